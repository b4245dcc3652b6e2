package provider

import (
	"maps"
	"testing"
)

func TestPluginLogDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want map[string]string
	}{
		{
			name: "terraform asked for no logs: the plugin's loggers are off",
			env:  map[string]string{},
			want: map[string]string{"TF_LOG_SDK": "off", "TF_LOG_PROVIDER_POUCH": "off"},
		},
		{
			name: "TF_LOG level is the plugin's level",
			env:  map[string]string{"TF_LOG": "INFO"},
			want: map[string]string{"TF_LOG_SDK": "info", "TF_LOG_PROVIDER_POUCH": "info"},
		},
		{
			name: "TF_LOG_PROVIDER wins over TF_LOG, as in terraform",
			env:  map[string]string{"TF_LOG": "error", "TF_LOG_PROVIDER": "debug"},
			want: map[string]string{"TF_LOG_SDK": "debug", "TF_LOG_PROVIDER_POUCH": "debug"},
		},
		{
			name: "a level the user set is kept",
			env:  map[string]string{"TF_LOG_SDK": "trace"},
			want: map[string]string{"TF_LOG_PROVIDER_POUCH": "off"},
		},
		{
			name: "TF_LOG=JSON keeps trace, the plugin's default",
			env:  map[string]string{"TF_LOG": "JSON"},
			want: nil,
		},
		{
			name: "a level terraform does not know keeps trace, as terraform does",
			env:  map[string]string{"TF_LOG": "verbose"},
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PluginLogDefaults(func(k string) string { return tc.env[k] })
			if !maps.Equal(got, tc.want) {
				t.Errorf("PluginLogDefaults(%v) = %v, want %v", tc.env, got, tc.want)
			}
		})
	}
}
