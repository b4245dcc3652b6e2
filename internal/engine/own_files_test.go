package engine

import (
	"strings"
	"testing"
)

func TestResolvConf(t *testing.T) {
	host := []byte("# the host's\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch corp.example\noptions edns0\n")
	for _, tc := range []struct {
		name string
		dns  DNSConfig
		want []string
	}{
		{"servers only", DNSConfig{Servers: []string{"10.0.0.53"}},
			[]string{"nameserver 10.0.0.53", "search corp.example", "options edns0"}},
		{"search only keeps the host's servers", DNSConfig{Search: []string{"svc.example", "example"}},
			[]string{"nameserver 192.0.2.1", "nameserver 192.0.2.2", "search svc.example example", "options edns0"}},
		{"all", DNSConfig{Servers: []string{"10.0.0.53", "2001:db8::53"}, Search: []string{"svc.example"}, Options: []string{"ndots:2", "rotate"}},
			[]string{"nameserver 10.0.0.53", "nameserver 2001:db8::53", "search svc.example", "options ndots:2 rotate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.Split(strings.TrimSpace(string(resolvConf(host, tc.dns))), "\n")
			if len(got) != len(tc.want)+1 || !strings.HasPrefix(got[0], "# ") || strings.Join(got[1:], "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("resolv.conf:\n%s\nwant after a comment:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestHostsFile(t *testing.T) {
	got := string(hostsFile([]byte("127.0.0.1\tlocalhost"), map[string]string{"db.internal": "10.1.2.3", "cache": "2001:db8::7"}))
	want := "127.0.0.1\tlocalhost\n# extra_hosts, added by pouch\n2001:db8::7\tcache\n10.1.2.3\tdb.internal\n"
	if got != want {
		t.Fatalf("hosts:\n%q\nwant\n%q", got, want)
	}
}

func TestCheckDNSAndExtraHosts(t *testing.T) {
	checkVerdicts(t, []ruleCase{
		{"all", CheckDNS(DNSConfig{Servers: []string{"10.0.0.53", "::1"}, Search: []string{"svc.example."}, Options: []string{"ndots:2", "single-request"}}), "", ""},
		{"four servers", CheckDNS(DNSConfig{Servers: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}}), "at most 3", "dns"},
		{"server name", CheckDNS(DNSConfig{Servers: []string{"dns.example"}}), "IP address", "dns[0]"},
		{"search space", CheckDNS(DNSConfig{Search: []string{"a b"}}), "host name", "dns_search[0]"},
		{"option", CheckDNS(DNSConfig{Options: []string{"ndots 2"}}), "resolver option", "dns_options[0]"},
		{"hosts", CheckExtraHosts(map[string]string{"db.internal": "10.1.2.3"}), "", ""},
		{"host ip", CheckExtraHosts(map[string]string{"db": "10.1.2"}), "IP address", `extra_hosts["db"]`},
		{"host name", CheckExtraHosts(map[string]string{"a b": "10.1.2.3"}), "host name", `extra_hosts["a b"]`},
	})
}
