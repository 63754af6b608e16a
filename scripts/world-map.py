#!/usr/bin/env python3
"""Makes src/admin/page/world.json, the dashboard's world map: one SVG path per
country, keyed by its ISO 3166-1 alpha-2 code.

Where the data comes from: Natural Earth's 1:110m Admin 0 countries (version
4.1.0), which Natural Earth places in the public domain ("All versions of
Natural Earth raster + vector map data found on this website are in the public
domain", naturalearthdata.com/about/terms-of-use). It is read from the TopoJSON
copy in the `world-atlas` npm package (2.0.2, ISC license for the packaging),
fetched by hand, never at build or test time:

    cd /tmp && npm pack world-atlas && tar xzf world-atlas-2.0.2.tgz
    python3 scripts/world-map.py /tmp/package/countries-110m.json > src/admin/page/world.json

What it does: decodes the TopoJSON arcs (quantized, delta-encoded), draws a
ring that crosses the antimeridian twice (once each side, clipped by the box), projects
longitude and latitude equirectangularly onto a 960 x 379 box (latitudes 84 N to
58 S: Antarctica is left out, no client asks from there), rounds to a tenth of
a unit (about 0.04 degrees), drops repeated points and rings smaller than a
unit, and writes each country as one path (`M x y x y ... Z` per ring).

Numeric to alpha-2: the table below (ISO 3166-1 numeric and alpha-2 codes, as
Debian's iso-codes package lists them). Natural Earth gives three areas no
numeric code: Kosovo is XK (as GeoIP2 databases say), Somaliland is drawn as
part of SO, and Northern Cyprus as part of CY, since a geo database locates
clients there as SO and CY. Countries too small for the 1:110m scale (e.g.
Singapore, Malta) are absent from the map; the map endpoint still decides for
them.
"""

import json
import sys

NUMERIC_TO_ALPHA2 = """
    004:AF 008:AL 010:AQ 012:DZ 016:AS 020:AD 024:AO 028:AG 031:AZ 032:AR 036:AU 040:AT
    044:BS 048:BH 050:BD 051:AM 052:BB 056:BE 060:BM 064:BT 068:BO 070:BA 072:BW 074:BV
    076:BR 084:BZ 086:IO 090:SB 092:VG 096:BN 100:BG 104:MM 108:BI 112:BY 116:KH 120:CM
    124:CA 132:CV 136:KY 140:CF 144:LK 148:TD 152:CL 156:CN 158:TW 162:CX 166:CC 170:CO
    174:KM 175:YT 178:CG 180:CD 184:CK 188:CR 191:HR 192:CU 196:CY 203:CZ 204:BJ 208:DK
    212:DM 214:DO 218:EC 222:SV 226:GQ 231:ET 232:ER 233:EE 234:FO 238:FK 239:GS 242:FJ
    246:FI 248:AX 250:FR 254:GF 258:PF 260:TF 262:DJ 266:GA 268:GE 270:GM 275:PS 276:DE
    288:GH 292:GI 296:KI 300:GR 304:GL 308:GD 312:GP 316:GU 320:GT 324:GN 328:GY 332:HT
    334:HM 336:VA 340:HN 344:HK 348:HU 352:IS 356:IN 360:ID 364:IR 368:IQ 372:IE 376:IL
    380:IT 384:CI 388:JM 392:JP 398:KZ 400:JO 404:KE 408:KP 410:KR 414:KW 417:KG 418:LA
    422:LB 426:LS 428:LV 430:LR 434:LY 438:LI 440:LT 442:LU 446:MO 450:MG 454:MW 458:MY
    462:MV 466:ML 470:MT 474:MQ 478:MR 480:MU 484:MX 492:MC 496:MN 498:MD 499:ME 500:MS
    504:MA 508:MZ 512:OM 516:NA 520:NR 524:NP 528:NL 531:CW 533:AW 534:SX 535:BQ 540:NC
    548:VU 554:NZ 558:NI 562:NE 566:NG 570:NU 574:NF 578:NO 580:MP 581:UM 583:FM 584:MH
    585:PW 586:PK 591:PA 598:PG 600:PY 604:PE 608:PH 612:PN 616:PL 620:PT 624:GW 626:TL
    630:PR 634:QA 638:RE 642:RO 643:RU 646:RW 652:BL 654:SH 659:KN 660:AI 662:LC 663:MF
    666:PM 670:VC 674:SM 678:ST 682:SA 686:SN 688:RS 690:SC 694:SL 702:SG 703:SK 704:VN
    705:SI 706:SO 710:ZA 716:ZW 724:ES 728:SS 729:SD 732:EH 740:SR 744:SJ 748:SZ 752:SE
    756:CH 760:SY 762:TJ 764:TH 768:TG 772:TK 776:TO 780:TT 784:AE 788:TN 792:TR 795:TM
    796:TC 798:TV 800:UG 804:UA 807:MK 818:EG 826:GB 831:GG 832:JE 833:IM 834:TZ 840:US
    850:VI 854:BF 858:UY 860:UZ 862:VE 876:WF 882:WS 887:YE 894:ZM
"""

NAMED = {"Kosovo": "XK", "Somaliland": "SO", "N. Cyprus": "CY"}
SKIP = {"AQ"}
WIDTH = 960.0
NORTH, SOUTH = 84.0, -58.0
SCALE = WIDTH / 360.0
HEIGHT = round((NORTH - SOUTH) * SCALE)


def codes():
    return dict(p.split(":") for p in NUMERIC_TO_ALPHA2.split())


def decode_arcs(topo):
    sx, sy = topo["transform"]["scale"]
    tx, ty = topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring_points(ring, arcs):
    out = []
    for i in ring:
        pts = arcs[i] if i >= 0 else arcs[~i][::-1]
        out.extend(pts if not out else pts[1:])
    return out


def project(lon, lat):
    lat = max(SOUTH, min(NORTH, lat))
    return round((lon + 180.0) * SCALE, 1), round((NORTH - lat) * SCALE, 1)


def unwrap(points):
    """A ring that crosses the antimeridian (Russia, Fiji) as one continuous
    ring past 180 degrees east, and the copy of it shifted a world west: drawn
    both, the box clips each to its side."""
    out = []
    for lon, lat in points:
        if out:
            while lon - out[-1][0] > 180:
                lon -= 360
            while out[-1][0] - lon > 180:
                lon += 360
        out.append((lon, lat))
    if min(lon for lon, _ in out) < -180:
        out = [(lon + 360, lat) for lon, lat in out]
    if max(lon for lon, _ in out) > 180:
        return [out, [(lon - 360, lat) for lon, lat in out]]
    return [out]


def ring_path(points):
    return "".join(one_ring(r) for r in unwrap(points))


def one_ring(points):
    xy = []
    for lon, lat in points:
        p = project(lon, lat)
        if not xy or xy[-1] != p:
            xy.append(p)
    if len(xy) > 1 and xy[0] == xy[-1]:
        xy.pop()
    if len(xy) < 3:
        return ""
    xs = [p[0] for p in xy]
    ys = [p[1] for p in xy]
    if max(xs) - min(xs) < 1 and max(ys) - min(ys) < 1:
        return ""
    num = lambda v: ("%.1f" % v).rstrip("0").rstrip(".")
    return "M" + " ".join(num(x) + " " + num(y) for x, y in xy) + "Z"


def main(path):
    topo = json.load(open(path))
    arcs = decode_arcs(topo)
    table = codes()
    paths = {}
    for g in topo["objects"]["countries"]["geometries"]:
        code = table.get(g.get("id") or "") or NAMED.get(g["properties"]["name"])
        if code is None:
            sys.exit("no alpha-2 code for %r" % g["properties"])
        if code in SKIP:
            continue
        polys = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        d = "".join(ring_path(ring_points(r, arcs)) for poly in polys for r in poly)
        if d:
            paths[code] = paths.get(code, "") + d
    out = {
        "source": "Natural Earth 1:110m Admin 0 countries 4.1.0 (public domain), "
        "via world-atlas 2.0.2; made by scripts/world-map.py",
        "width": WIDTH,
        "height": HEIGHT,
        "countries": dict(sorted(paths.items())),
    }
    json.dump(out, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: world-map.py countries-110m.json > src/admin/page/world.json")
    main(sys.argv[1])
