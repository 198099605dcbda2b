package main

import (
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	all := fileSet{fileServerCert: true, fileServerKey: true, fileClientCert: true, fileClientKey: true, fileCA: true}
	tests := map[string]struct {
		mode    Mode
		present fileSet
		// want is the level served; wantSelfSigned whether an in-memory cert is used.
		want           Level
		wantSelfSigned bool
		// wantReason is the exact log reason, since humans read it.
		wantReason string
	}{
		"adaptive should serve mtls when the full bundle is present": {
			mode: ModeAdaptive, present: all, want: LevelMTLS, wantReason: "full bundle present",
		},
		"adaptive should serve mtls without client cert files, which only matter for outgoing calls": {
			mode: ModeAdaptive, present: fileSet{fileServerCert: true, fileServerKey: true, fileCA: true}, want: LevelMTLS,
			wantReason: "full bundle present",
		},
		"adaptive should serve tls without client auth when ca.crt is missing": {
			mode: ModeAdaptive, present: fileSet{fileServerCert: true, fileServerKey: true}, want: LevelTLS,
			wantReason: "tls.crt and tls.key present but no ca.crt: TLS without client auth",
		},
		"adaptive should fall back to plain when the key is missing": {
			mode: ModeAdaptive, present: fileSet{fileServerCert: true, fileCA: true}, want: LevelPlain,
			wantReason: "no usable server cert (missing tls.key): plain HTTP",
		},
		"adaptive should serve plain when nothing is present": {
			mode: ModeAdaptive, present: fileSet{}, want: LevelPlain,
			wantReason: "no usable server cert (missing tls.crt, tls.key): plain HTTP",
		},
		"theater should serve the issued cert but accept any client": {
			mode: ModeTheater, present: all, want: LevelTLS,
			wantReason: "theater mode: serving tls.crt but accepting any client",
		},
		"theater should self-sign when it has no server pair": {
			mode: ModeTheater, present: fileSet{fileCA: true}, want: LevelTLS, wantSelfSigned: true,
			wantReason: "theater mode: no server cert and key, serving an in-memory self-signed cert and accepting any client",
		},
		"plain-only should ignore a full bundle": {
			mode: ModePlainOnly, present: all, want: LevelPlain, wantReason: "plain-only mode ignores certs",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := decide(tc.mode, tc.present)
			if got.Level != tc.want || got.SelfSigned != tc.wantSelfSigned {
				t.Errorf("got level %s self-signed %v, want %s self-signed %v", got.Level, got.SelfSigned, tc.want, tc.wantSelfSigned)
			}
			if got.Reason != tc.wantReason {
				t.Errorf("got reason %q, want %q", got.Reason, tc.wantReason)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := map[string]struct {
		getenv func(string) string
		// wantErr: configuration must be rejected at start.
		wantErr bool
		// wantCertsDir, wantHTTPS: derived defaults (checked when no error).
		wantCertsDir, wantHTTPS string
		// wantLoadOnce: RELOAD=off; wantWait: CERTS_WAIT (checked when no error).
		wantLoadOnce bool
		wantWait     time.Duration
	}{
		"should default the certs dir and ports from the service name": {
			getenv: env("SERVICE_NAME", "platform"), wantCertsDir: "/certs/platform", wantHTTPS: ":8443",
		},
		"should honour CERTS_DIR for services that use /etc/certs": {
			getenv:       env("SERVICE_NAME", "email-parser", "CERTS_DIR", "/etc/certs", "SERVICE_HTTPS_PORT", "9443"),
			wantCertsDir: "/etc/certs", wantHTTPS: ":9443",
		},
		"should reject a missing SERVICE_NAME":          {getenv: env(), wantErr: true},
		"should reject an unknown MODE":                 {getenv: env("SERVICE_NAME", "a", "MODE", "secure"), wantErr: true},
		"should reject a reload signal it can't handle": {getenv: env("SERVICE_NAME", "a", "RELOAD_SIGNAL", "SIGUSR1"), wantErr: true},
		"should reject a port out of range":             {getenv: env("SERVICE_NAME", "a", "SERVICE_PORT", "70000"), wantErr: true},
		"should reject a non-boolean ALSO_HTTP":         {getenv: env("SERVICE_NAME", "a", "ALSO_HTTP", "yes please"), wantErr: true},
		"should reject a worker calling a peer over plain HTTP": {
			getenv: env("SERVICE_NAME", "a", "CALL_URL", "http://platform:8080/health"), wantErr: true,
		},
		"should reject a worker interval that is not a duration": {
			getenv: env("SERVICE_NAME", "a", "CALL_URL", "https://platform:8443/health", "CALL_INTERVAL", "often"), wantErr: true,
		},
		"should accept a worker calling the platform over mTLS": {
			getenv:       env("SERVICE_NAME", "a", "CALL_URL", "https://platform:8443/health, https://streaming:8443/health"),
			wantCertsDir: "/certs/a", wantHTTPS: ":8443",
		},
		"should take new bundles without a restart by default": {
			getenv: env("SERVICE_NAME", "a", "RELOAD", "watch"), wantCertsDir: "/certs/a", wantHTTPS: ":8443",
		},
		"should load once with RELOAD=off, for the restart-based path": {
			getenv: env("SERVICE_NAME", "a", "RELOAD", "off"), wantCertsDir: "/certs/a", wantHTTPS: ":8443", wantLoadOnce: true,
		},
		"should reject a reload mode it does not know": {getenv: env("SERVICE_NAME", "a", "RELOAD", "sometimes"), wantErr: true},
		"should find the bundle under CRANK_CERTS_DIR, the kit's variable": {
			getenv: env("SERVICE_NAME", "a", "CRANK_CERTS_DIR", "/run/certs"), wantCertsDir: "/run/certs/a", wantHTTPS: ":8443",
		},
		"should prefer CERTS_DIR to CRANK_CERTS_DIR": {
			getenv:       env("SERVICE_NAME", "a", "CRANK_CERTS_DIR", "/run/certs", "CERTS_DIR", "/own"),
			wantCertsDir: "/own", wantHTTPS: ":8443",
		},
		"should parse a start-up wait for the bundle": {
			getenv: env("SERVICE_NAME", "a", "CERTS_WAIT", "30s"), wantCertsDir: "/certs/a", wantHTTPS: ":8443", wantWait: 30 * time.Second,
		},
		"should reject a start-up wait that is not a duration": {getenv: env("SERVICE_NAME", "a", "CERTS_WAIT", "30"), wantErr: true},
		"should reject an unknown CRANK_ENVIRONMENT": {
			getenv: env("SERVICE_NAME", "a", "CRANK_ENVIRONMENT", "staging"), wantErr: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := loadConfig(tc.getenv)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (got.CertsDir != tc.wantCertsDir || got.HTTPSAddr != tc.wantHTTPS) {
				t.Errorf("got certs dir %q https %q, want %q %q", got.CertsDir, got.HTTPSAddr, tc.wantCertsDir, tc.wantHTTPS)
			}
			if err == nil && (got.LoadOnce != tc.wantLoadOnce || got.CertsWait != tc.wantWait) {
				t.Errorf("got load once %v wait %s, want %v %s", got.LoadOnce, got.CertsWait, tc.wantLoadOnce, tc.wantWait)
			}
		})
	}
}
