#!/usr/bin/perl
# Rewrites a flat country database (a top-level `country_code`, such as the
# bundled geo/geo-whois-asn-country.mmdb) in the GeoIP2 layout (continent.code,
# country.iso_code, location), so that gdnsd's geoip plugin, which reads only
# that layout, can serve the same database as signpost in
# benches/scope-compare.py. Continents and points come from signpost's own
# table (src/geo/countries.rs), the one it uses for flat databases. Needs
# Debian's libmaxmind-db-reader-perl and libmaxmind-db-writer-perl.
#
#   perl benches/geo/to-geoip2.pl geo/geo-whois-asn-country.mmdb OUT.mmdb
use strict;
use warnings;
use File::Basename qw(dirname);
use MaxMind::DB::Reader;
use MaxMind::DB::Writer::Tree;
use Net::Works::Network;

my ( $in, $out ) = @ARGV;
die "usage: $0 IN.mmdb OUT.mmdb\n" unless defined $out;
my $repo = dirname(__FILE__) . "/../..";
my %country;
open( my $fh, '<', "$repo/src/geo/countries.rs" ) or die "countries.rs: $!";
while (<$fh>) {
    $country{$1} = [ $2, $3 + 0, $4 + 0 ]
      if /c\(b"([A-Z]{2})", b"([A-Z]{2})", (-?[0-9.]+), (-?[0-9.]+)\)/;
}
close $fh;
die "no rows read from countries.rs\n" unless %country > 200;

my $reader = MaxMind::DB::Reader->new( file => $in );
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version            => 6,
    record_size           => 28,
    database_type         => 'GeoIP2-Country',
    languages             => ['en'],
    description           => { en => "converted from $in" },
    alias_ipv6_to_ipv4    => 1,
    remove_reserved_networks => 0,
    map_key_type_callback => sub {
        my $k = shift;
        return { latitude => 'double', longitude => 'double' }->{$k} // ( $k =~ /^(continent|country|location)$/ ? 'map' : 'utf8_string' );
    },
);
my ( $n, $unknown ) = ( 0, 0 );
$reader->iterate_search_tree(
    sub {
        my ( $ip_as_int, $mask, $data ) = @_;
        my $cc = $data->{country_code} or return;
        my $row = $country{ uc $cc };
        unless ($row) { $unknown++; return; }
        my $v6  = $reader->metadata->ip_version == 6;
        my $net = Net::Works::Network->new_from_integer(
            integer     => $ip_as_int,
            mask_length => $mask,
            version     => $v6 ? 6 : 4
        )->as_string;
        # The IPv4 aliases in the IPv6 tree (IPv4-mapped, Teredo, 6to4): the
        # writer makes them again from ::/96.
        return if $net =~ /^(::ffff:|2002:|2001::|2001:0:)/i;
        $tree->insert_network(
            $net,
            {
                continent => { code => $row->[0] },
                country   => { iso_code => uc $cc },
                location  => { latitude => $row->[1], longitude => $row->[2] },
            }
        );
        $n++;
    }
);
open( my $o, '>:raw', $out ) or die "$out: $!";
$tree->write_tree($o);
close $o;
print STDERR "to-geoip2: $n networks written, $unknown with an unknown country skipped\n";
