package reconcile

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// containerOpt builds test containers (cert-manager style fixtures).
type containerOpt func(*dockerwatch.Container)

func newContainer(opts ...containerOpt) dockerwatch.Container {
	c := dockerwatch.Container{
		ID: "0123456789abcdef", Name: "crank-email-parser-1", Project: "crank", Service: "email-parser",
		Labels: map[string]string{}, State: dockerwatch.StateCreated,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func withLabel(k, v string) containerOpt { return func(c *dockerwatch.Container) { c.Labels[k] = v } }
func withProject(p string) containerOpt  { return func(c *dockerwatch.Container) { c.Project = p } }
func withService(s string) containerOpt  { return func(c *dockerwatch.Container) { c.Service = s } }
func withUser(u string) containerOpt     { return func(c *dockerwatch.Container) { c.User = u } }
func withRunningSince(t time.Time) containerOpt {
	return func(c *dockerwatch.Container) { c.State, c.StartedAt = dockerwatch.StateRunning, t }
}
func withAliases(network string, aliases ...string) containerOpt {
	return func(c *dockerwatch.Container) {
		if c.Networks == nil {
			c.Networks = map[string]dockerwatch.Network{}
		}
		c.Networks[network] = dockerwatch.Network{Aliases: aliases}
	}
}

func TestScopeManaged(t *testing.T) {
	t.Parallel()
	scope := Scope{Project: "crank", SelfID: "self"}
	tests := map[string]struct {
		c dockerwatch.Container
		// want is the scope's code, exactly; wantWhy a substring of the
		// explanation a human reads.
		want    ScopeReason
		wantWhy string
	}{
		"should manage a container in the controller's project": {
			c: newContainer(), want: ScopeInProject, wantWhy: "compose project crank",
		},
		"should not manage a container of another project": {
			c: newContainer(withProject("other")), want: ScopeOutside, wantWhy: "outside",
		},
		"should manage a container of another project that opts in": {
			c: newContainer(withProject("other"), withLabel(LabelEnable, "true")), want: ScopeOptedIn, wantWhy: "opted in",
		},
		"should not manage a container of the project that opts out": {
			c: newContainer(withLabel(LabelEnable, "false")), want: ScopeOptedOut, wantWhy: "opted out",
		},
		"should not manage a container with a typo in the enable label": {
			c: newContainer(withLabel(LabelEnable, "ture")), want: ScopeInvalidLabel, wantWhy: `invalid value "ture"`,
		},
		"should never manage the controller itself": {
			c: func() dockerwatch.Container { c := newContainer(); c.ID = "self"; return c }(), want: ScopeSelf, wantWhy: "controller itself",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := scope.Managed(tc.c)
			if got != tc.want || !strings.Contains(scope.Explain(got, tc.c), tc.wantWhy) {
				t.Errorf("got (%q, %q), want (%q, containing %q)", got, scope.Explain(got, tc.c), tc.want, tc.wantWhy)
			}
			if wantManaged := tc.want == ScopeInProject || tc.want == ScopeOptedIn; got.Managed() != wantManaged {
				t.Errorf("Managed(): got %v, want %v", got.Managed(), wantManaged)
			}
		})
	}
	if got := (Scope{}).Managed(newContainer()); got.Managed() {
		t.Errorf("got %q with no project configured, want only opted-in containers managed", got)
	}
}

func TestServiceName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		c dockerwatch.Container
		// want is the service name; wantErr a substring of the error.
		want, wantErr string
	}{
		"should use the compose service":            {c: newContainer(), want: "email-parser"},
		"should prefer the service label":           {c: newContainer(withLabel(LabelService, "parser")), want: "parser"},
		"should reject a name that is not a label":  {c: newContainer(withService("email_parser")), wantErr: "set label crank.security.service"},
		"should reject a traversal in the label":    {c: newContainer(withLabel(LabelService, "../etc")), wantErr: "label crank.security.service"},
		"should reject an uppercase container name": {c: newContainer(withService("MyBox")), wantErr: "service name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ServiceName(tc.c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got (%q, %v), want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got (%q, %v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestIdentityFor(t *testing.T) {
	t.Parallel()
	c := newContainer(withAliases("crank_default", "email-parser", "parser"))
	c.Hostname = "parser-host"
	id := IdentityFor(c, "email-parser", "crank.local", []string{"crank-email-parser-2", "parser"})
	want := []string{"email-parser", "crank-email-parser-1", "parser", "parser-host", "localhost", "crank-email-parser-2"}
	if strings.Join(id.DNSNames, ",") != strings.Join(want, ",") {
		t.Errorf("got SANs %v, want %v", id.DNSNames, want)
	}
	c.Hostname = c.ID[:12] // assigned by the engine: changes on every recreate
	if got := IdentityFor(c, "email-parser", "crank.local", nil); slices.Contains(got.DNSNames, c.Hostname) {
		t.Errorf("got SANs %v, want no engine-assigned hostname %s: it would force a reissue on every rebuild", got.DNSNames, c.Hostname)
	}
	if id.Service != "email-parser" || id.TrustDomain != "crank.local" {
		t.Errorf("got %+v, want service email-parser in crank.local", id)
	}
}

func TestOwnerFor(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		c dockerwatch.Container
		// want is the owner; wantGap whether a gap is reported; wantErr whether it fails.
		want    certs.Owner
		wantGap bool
		wantErr bool
	}{
		"should leave root containers' files as they are": {c: newContainer(), want: certs.Owner{UID: -1, GID: -1}},
		"should use a numeric user with its group":        {c: newContainer(withUser("1000:2000")), want: certs.Owner{UID: 1000, GID: 2000}},
		"should use a numeric user as its own group":      {c: newContainer(withUser("1000")), want: certs.Owner{UID: 1000, GID: 1000}},
		"should report a named user as a gap": {
			c: newContainer(withUser("app")), want: certs.Owner{UID: -1, GID: -1}, wantGap: true,
		},
		"should prefer the key-owner label and group read": {
			c:    newContainer(withUser("app"), withLabel(LabelKeyOwner, "1001:1002"), withLabel(LabelKeyGroupRead, "true")),
			want: certs.Owner{UID: 1001, GID: 1002, GroupRead: true},
		},
		"should reject a malformed key-owner label": {c: newContainer(withLabel(LabelKeyOwner, "bob")), wantErr: true},
		"should accept the largest valid id, 2^32-2": {
			c: newContainer(withLabel(LabelKeyOwner, "4294967294:4294967294")), want: certs.Owner{UID: 4294967294, GID: 4294967294},
		},
		"should reject 2^32-1, which chown reads as leave unchanged": {c: newContainer(withLabel(LabelKeyOwner, "4294967295")), wantErr: true},
		"should reject a uid that would wrap in the kernel to uid 1000": {
			c: newContainer(withLabel(LabelKeyOwner, "4294968296")), wantErr: true,
		},
		"should reject a gid that would wrap": {c: newContainer(withLabel(LabelKeyOwner, "1000:4294968296")), wantErr: true},
		"should reject a numeric user that would wrap, as a gap": {
			c: newContainer(withUser("4294968296")), want: certs.Owner{UID: -1, GID: -1}, wantGap: true,
		},
		"should reject a negative uid": {c: newContainer(withLabel(LabelKeyOwner, "-1")), wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, gap, err := OwnerFor(tc.c)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if got != tc.want || (gap != "") != tc.wantGap {
				t.Errorf("got (%+v, %q), want (%+v, gap %v)", got, gap, tc.want, tc.wantGap)
			}
		})
	}
}

func TestDecideBundle(t *testing.T) {
	t.Parallel()
	f := func(rs ...certs.Reason) []certs.Finding {
		var out []certs.Finding
		for _, r := range rs {
			out = append(out, certs.Finding{Reason: r})
		}
		return out
	}
	tests := map[string]struct {
		findings []certs.Finding
		// unsafe are the bundle's unsafe files.
		unsafe []certs.UnsafeFile
		// want is the action and the reason that drove it.
		want       BundleAction
		wantReason certs.Reason
	}{
		"should keep a bundle with no findings":                  {want: BundleKeep},
		"should issue when the bundle is missing":                {findings: f(certs.ReasonMissing), want: BundleIssue, wantReason: certs.ReasonMissing},
		"should issue when renewal is due":                       {findings: f(certs.ReasonRenewDue), want: BundleIssue, wantReason: certs.ReasonRenewDue},
		"should only rewrite ca.crt when the trust bundle moved": {findings: f(certs.ReasonTrustBundleStale), want: BundleWriteCA, wantReason: certs.ReasonTrustBundleStale},
		"should only fix permissions when modes are wrong":       {findings: f(certs.ReasonBadPermissions), want: BundleFixPerms, wantReason: certs.ReasonBadPermissions},
		"should issue when a reissue reason follows cheaper ones": {
			findings: f(certs.ReasonBadPermissions, certs.ReasonTrustBundleStale, certs.ReasonSANMismatch), want: BundleIssue, wantReason: certs.ReasonSANMismatch,
		},
		"should prefer rewriting ca.crt over a chmod": {
			findings: f(certs.ReasonBadPermissions, certs.ReasonTrustBundleStale), want: BundleWriteCA, wantReason: certs.ReasonTrustBundleStale,
		},
		"should relink, not reissue, files someone hard-linked from elsewhere": {
			findings: f(certs.ReasonUnsafeFile, certs.ReasonBadPermissions),
			unsafe:   []certs.UnsafeFile{{Name: "client.key", What: "has 2 links", Linked: true}},
			want:     BundleRelink, wantReason: certs.ReasonUnsafeFile,
		},
		"should reissue a bundle whose linked file does not match, like a tenant's link to another key": {
			findings: f(certs.ReasonUnsafeFile, certs.ReasonKeyMismatch),
			unsafe:   []certs.UnsafeFile{{Name: "client.key", What: "has 2 links", Linked: true}},
			want:     BundleIssue, wantReason: certs.ReasonKeyMismatch,
		},
		"should reissue when a file is a FIFO, even beside a linked one": {
			findings: f(certs.ReasonUnsafeFile, certs.ReasonUnsafeFile),
			unsafe:   []certs.UnsafeFile{{Name: "tls.key", What: "is a FIFO"}, {Name: "client.key", What: "has 2 links", Linked: true}},
			want:     BundleIssue, wantReason: certs.ReasonUnsafeFile,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, reason := DecideBundle(tc.findings, tc.unsafe)
			if got != tc.want || reason != tc.wantReason {
				t.Errorf("got (%s, %s), want (%s, %s)", got, reason, tc.want, tc.wantReason)
			}
		})
	}
}

func TestStaleProcess(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		c       dockerwatch.Container
		written time.Time
		// want is whether the process holds stale certs.
		want bool
	}{
		"should not flag a created container":                   {c: newContainer(), written: t0},
		"should not flag a process started after the bundle":    {c: newContainer(withRunningSince(t0.Add(time.Second))), written: t0},
		"should flag a process started before the bundle":       {c: newContainer(withRunningSince(t0.Add(-time.Minute))), written: t0, want: true},
		"should not flag when the bundle time is unknown":       {c: newContainer(withRunningSince(t0)), written: time.Time{}},
		"should not flag a process started at the same instant": {c: newContainer(withRunningSince(t0)), written: t0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, why := StaleProcess(tc.c, tc.written)
			if got != tc.want || (got && why == "") {
				t.Errorf("got (%v, %q), want %v with a reason", got, why, tc.want)
			}
		})
	}
}

func TestNextRenewal(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	if got := NextRenewal(t0.Add(time.Hour), t0.Add(30*time.Minute), time.Minute); !got.Equal(t0.Add(31 * time.Minute)) {
		t.Errorf("got %s, want the earlier leaf's time plus jitter %s", got, t0.Add(31*time.Minute))
	}
}

func TestOwnerDrift(t *testing.T) {
	t.Parallel()
	onDisk := func(uid, gid int) *certs.BundleFiles {
		return &certs.BundleFiles{Generation: "..g", ServerKeyUID: uid, ServerKeyGID: gid, ClientKeyUID: uid, ClientKeyGID: gid}
	}
	tests := map[string]struct {
		b     *certs.BundleFiles
		owner certs.Owner
		// want is whether the keys must be chowned.
		want bool
	}{
		"should flag root-owned keys for a container that now runs as 1000": {b: onDisk(0, 0), owner: certs.Owner{UID: 1000, GID: 1000}, want: true},
		"should accept keys owned by the container's user":                  {b: onDisk(1000, 1000), owner: certs.Owner{UID: 1000, GID: 1000}},
		"should leave ownership alone when the container runs as root":      {b: onDisk(1000, 1000), owner: certs.Owner{UID: -1, GID: -1}},
		"should flag a group that differs":                                  {b: onDisk(1000, 0), owner: certs.Owner{UID: 1000, GID: 2000}, want: true},
		"should ignore a bundle not read from disk":                         {b: &certs.BundleFiles{}, owner: certs.Owner{UID: 1000, GID: 1000}},
		"should ignore a missing bundle":                                    {owner: certs.Owner{UID: 1000, GID: 1000}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := OwnerDrift(tc.b, tc.owner); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
