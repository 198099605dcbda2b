package reconcile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

func withImageLabel(k, v string) containerOpt {
	return func(c *dockerwatch.Container) {
		if c.ImageLabels == nil {
			c.ImageLabels = map[string]string{}
		}
		c.ImageLabels[k] = v
		c.Labels[k] = v
	}
}

func TestTrustedLabels(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		c     dockerwatch.Container
		trust bool
		// wantService is the ServiceName after filtering; wantFindings the
		// label-from-image findings, by count; wantProject the project.
		wantService  string
		wantFindings int
		wantProject  string
	}{
		"should ignore a service label that the image supplied": {
			c:           newContainer(withService("intruder"), withImageLabel(LabelService, "platform")),
			wantService: "intruder", wantFindings: 1, wantProject: "crank",
		},
		"should keep a service label the operator set over the image's value": {
			c:           newContainer(withService("intruder"), withImageLabel(LabelService, "platform"), withLabel(LabelService, "billing")),
			wantService: "billing", wantProject: "crank",
		},
		"should keep image labels when told to trust them": {
			c:     newContainer(withService("intruder"), withImageLabel(LabelService, "platform")),
			trust: true, wantService: "platform", wantProject: "crank",
		},
		"should ignore compose labels an image carries, so a docker run container cannot join the project": {
			c: newContainer(withProject("crank"), withService("platform"), func(c *dockerwatch.Container) { c.Name = "sneaky" },
				withImageLabel(dockerwatch.LabelComposeProject, "crank"), withImageLabel(dockerwatch.LabelComposeService, "platform")),
			wantService: "sneaky", wantFindings: 2, wantProject: "",
		},
		"should leave labels outside crank.security and compose alone": {
			c:           newContainer(withImageLabel("org.opencontainers.image.title", "x")),
			wantService: "email-parser", wantProject: "crank",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, findings := TrustedLabels(tc.c, tc.trust)
			svc, err := ServiceName(got)
			if err != nil || svc != tc.wantService {
				t.Errorf("ServiceName: got %q, %v; want %q", svc, err, tc.wantService)
			}
			if len(findings) != tc.wantFindings {
				t.Errorf("findings: got %d %+v, want %d", len(findings), findings, tc.wantFindings)
			}
			for _, f := range findings {
				if f.Reason != LabelFromImage {
					t.Errorf("finding reason: got %q, want %q", f.Reason, LabelFromImage)
				}
			}
			if got.Project != tc.wantProject {
				t.Errorf("project: got %q, want %q", got.Project, tc.wantProject)
			}
		})
	}
}

func TestJudgeClaim(t *testing.T) {
	t.Parallel()
	platform := state.IdentityOwner{Key: "compose:crank/platform", Project: "crank", Service: "platform"}
	intruder := state.IdentityOwner{Key: "compose:crank/intruder", Project: "crank", Service: "intruder"}
	tests := map[string]struct {
		claimant, owner state.IdentityOwner
		reserved        string
		// wantOK: the claim holds; otherwise the finding is identity-conflict
		// and its message names wantNamed.
		wantOK    bool
		wantNamed string
	}{
		"should grant an identity to its owner": {claimant: platform, owner: platform, wantOK: true},
		"should grant an unowned identity":      {claimant: platform, wantOK: true},
		"should refuse a second claimant and name the owner": {
			claimant: intruder, owner: platform, wantNamed: "compose service crank/platform",
		},
		"should refuse a reserved identity even to its would-be first claimant": {
			claimant: intruder, reserved: "the controller", wantNamed: "the controller",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, ok := JudgeClaim("platform", tc.claimant, tc.owner, tc.reserved)
			if ok != tc.wantOK {
				t.Fatalf("ok: got %v, want %v", ok, tc.wantOK)
			}
			if !ok && (f.Reason != IdentityConflict || !strings.Contains(f.Message, tc.wantNamed)) {
				t.Errorf("finding: got %q %q, want %q naming %q", f.Reason, f.Message, IdentityConflict, tc.wantNamed)
			}
		})
	}
}

func TestDropForeignNames(t *testing.T) {
	t.Parallel()
	taken := func(n string) (string, bool) { return "compose service crank/" + n, n == "platform" || n == "billing" }
	kept, findings := DropForeignNames([]string{"intruder", "platform", "crank-intruder-1", "billing", "localhost"}, "intruder", taken)
	if got, want := strings.Join(kept, ","), "intruder,crank-intruder-1,localhost"; got != want {
		t.Errorf("kept: got %s, want %s", got, want)
	}
	if len(findings) != 2 || findings[0].Reason != AliasConflict || !strings.Contains(findings[0].Message, "platform") {
		t.Errorf("findings: got %+v, want two alias-conflict, the first naming platform", findings)
	}
	if kept, _ := DropForeignNames([]string{"platform"}, "platform", taken); len(kept) != 1 {
		t.Errorf("own name: got %v, want it kept", kept)
	}
}

func TestReconcileRefusesASecondClaimantOfAnIdentity(t *testing.T) {
	t.Parallel()
	platform := newContainer(withService("platform"), withUser("2000:2000"), withAliases("crank_default", "platform"))
	byLabel := newContainer(withService("intruder-label"), withUser("1000:1000"), withLabel(LabelService, "platform"),
		func(c *dockerwatch.Container) { c.ID, c.Name = "1111111111111111", "crank-intruder-label-1" })
	foreign := newContainer(withProject("other"), withService("x"), withLabel(LabelEnable, "true"), withLabel(LabelService, "platform"),
		func(c *dockerwatch.Container) { c.ID, c.Name = "2222222222222222", "other-x-1" })
	f := newFixture(t, platform, byLabel, foreign)
	mustReconcile(t, f, platform.ID)
	before, _, _ := f.records.Get(platform.ID)
	for _, id := range []string{byLabel.ID, foreign.ID, byLabel.ID, platform.ID} {
		mustReconcile(t, f, id)
	}
	after, _, _ := f.records.Get(platform.ID)
	if after.Bundle.ServerSerial != before.Bundle.ServerSerial || after.Bundle.ClientSerial != before.Bundle.ClientSerial {
		t.Errorf("platform's serials: got %s/%s, want unchanged %s/%s", after.Bundle.ServerSerial, after.Bundle.ClientSerial,
			before.Bundle.ServerSerial, before.Bundle.ClientSerial)
	}
	for _, id := range []string{byLabel.ID, foreign.ID} {
		rec, _, _ := f.records.Get(id)
		if !rec.Identity.Refused || len(rec.Identity.Findings) != 1 || rec.Identity.Findings[0].Reason != string(IdentityConflict) {
			t.Errorf("claimant %s: got identity %+v, want refused with identity-conflict", id, rec.Identity)
		}
		if rec.Bundle.Generation != "" {
			t.Errorf("claimant %s: got a bundle generation %q, want none", id, rec.Bundle.Generation)
		}
	}
	if os.Geteuid() == 0 {
		assertKeyOwner(t, filepath.Join(f.certs, "platform", "client.key"), 2000)
	}
}

func TestReconcileRefusesReservedIdentities(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"crank-mtls-controller", "operator", "localhost"} {
		c := newContainer(withLabel(LabelService, name))
		f := newFixture(t, c)
		f.r.Reserved = map[string]string{"crank-mtls-controller": "the controller", "operator": "the operator's client bundle"}
		mustReconcile(t, f, c.ID)
		rec, _, _ := f.records.Get(c.ID)
		if !rec.Identity.Refused {
			t.Errorf("claim of %s: got %+v, want refused", name, rec.Identity)
		}
		if _, err := os.Stat(filepath.Join(f.certs, name)); err == nil {
			t.Errorf("claim of %s: got a bundle directory, want none", name)
		}
	}
}

func TestReconcileIgnoresAnImageSuppliedServiceLabel(t *testing.T) {
	t.Parallel()
	platform := newContainer(withService("platform"))
	byImage := newContainer(withService("intruder-image"), withImageLabel(LabelService, "platform"),
		func(c *dockerwatch.Container) { c.ID, c.Name = "3333333333333333", "crank-intruder-image-1" })
	f := newFixture(t, platform, byImage)
	mustReconcile(t, f, platform.ID)
	mustReconcile(t, f, byImage.ID)
	rec, _, _ := f.records.Get(byImage.ID)
	if rec.Service != "intruder-image" || rec.Identity.Refused {
		t.Errorf("image-labelled container: got service %q refused=%v, want its own identity intruder-image", rec.Service, rec.Identity.Refused)
	}
	if len(rec.Identity.Findings) != 1 || rec.Identity.Findings[0].Reason != string(LabelFromImage) {
		t.Errorf("findings: got %+v, want one label-from-image", rec.Identity.Findings)
	}
}

func TestReconcileDropsAnAliasThatNamesAnotherIdentity(t *testing.T) {
	t.Parallel()
	platform := newContainer(withService("platform"))
	aliased := newContainer(withService("intruder-alias"), withAliases("crank_default", "platform"),
		func(c *dockerwatch.Container) { c.ID, c.Name = "4444444444444444", "crank-intruder-alias-1" })
	t.Run("should leave it out when the identity is already owned", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, platform, aliased)
		mustReconcile(t, f, platform.ID)
		mustReconcile(t, f, aliased.ID)
		assertNoSAN(t, f, "intruder-alias", "platform")
		rec, _, _ := f.records.Get(aliased.ID)
		if len(rec.Identity.Findings) != 1 || rec.Identity.Findings[0].Reason != string(AliasConflict) {
			t.Errorf("findings: got %+v, want one alias-conflict", rec.Identity.Findings)
		}
	})
	t.Run("should reissue a certificate issued before the identity was claimed", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t, platform, aliased)
		mustReconcile(t, f, aliased.ID)
		mustReconcile(t, f, platform.ID)
		mustReconcile(t, f, aliased.ID)
		assertNoSAN(t, f, "intruder-alias", "platform")
	})
}

func TestReconcileReportsReplicasThatDisagreeOnTheKeyOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chown needs root; skipped when the tests do not run as root")
	}
	a := newContainer(withUser("2000:2000"))
	b := newContainer(withUser("1000:1000"), func(c *dockerwatch.Container) { c.ID, c.Name = "5555555555555555", "crank-email-parser-2" })
	f := newFixture(t, a, b)
	for _, id := range []string{a.ID, b.ID, a.ID, b.ID} {
		mustReconcile(t, f, id)
		assertKeyOwner(t, filepath.Join(f.certs, "email-parser", "tls.key"), 2000)
	}
	rec, _, _ := f.records.Get(b.ID)
	if len(rec.Identity.Findings) != 1 || rec.Identity.Findings[0].Reason != string(OwnerConflict) {
		t.Errorf("findings of the second replica: got %+v, want one owner-conflict", rec.Identity.Findings)
	}
}

func mustReconcile(t *testing.T, f *fixture, id string) {
	t.Helper()
	if _, err := f.reconcile(t, id); err != nil {
		t.Fatalf("reconcile %s: %v", id, err)
	}
}

func assertKeyOwner(t *testing.T, path string, uid uint32) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid {
		t.Errorf("%s: got owner uid %d, want %d", path, st.Uid, uid)
	}
}

func assertNoSAN(t *testing.T, f *fixture, service, name string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(f.certs, service, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := certs.ParseCertificatesPEM(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range leaves[0].DNSNames {
		if n == name {
			t.Errorf("%s's certificate: got SANs %v, want no %s", service, leaves[0].DNSNames, name)
		}
	}
}

func TestReconcileRelinksABundleSomeoneHardLinkedWithoutReissuing(t *testing.T) {
	t.Parallel()
	platform := newContainer(withService("platform"))
	f := newFixture(t, platform)
	mustReconcile(t, f, platform.ID)
	// Started after its bundle was written (the volume stamps real time).
	platform.State, platform.StartedAt = dockerwatch.StateRunning, time.Now()
	f.docker.byID[platform.ID] = platform
	before, _, _ := f.records.Get(platform.ID)
	// A tenant with the whole volume links platform's key into a place of
	// its own (here the volume's root, which no cleanup ever visits).
	if err := os.Link(filepath.Join(f.certs, "platform", "..data", "client.key"), filepath.Join(f.certs, "stolen.key")); err != nil {
		t.Fatal(err)
	}
	f.now = f.now.Add(time.Minute)
	mustReconcile(t, f, platform.ID)
	after, _, _ := f.records.Get(platform.ID)
	if after.Bundle.ServerSerial != before.Bundle.ServerSerial || after.Bundle.ClientSerial != before.Bundle.ClientSerial {
		t.Errorf("serials: got %s/%s, want unchanged %s/%s", after.Bundle.ServerSerial, after.Bundle.ClientSerial,
			before.Bundle.ServerSerial, before.Bundle.ClientSerial)
	}
	if after.Bundle.Generation == before.Bundle.Generation {
		t.Error("generation: got the same, want fresh files")
	}
	if after.NeedsRestart || !after.Bundle.WrittenAt.Equal(before.Bundle.WrittenAt) || !after.Bundle.RenewAt.Equal(before.Bundle.RenewAt) {
		t.Errorf("got NeedsRestart=%v written %v renew %v, want no restart and the times of the bundle as first written (%v, %v)",
			after.NeedsRestart, after.Bundle.WrittenAt, after.Bundle.RenewAt, before.Bundle.WrittenAt, before.Bundle.RenewAt)
	}
	fi, err := os.Stat(filepath.Join(f.certs, "platform", "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	if n := fi.Sys().(*syscall.Stat_t).Nlink; n != 1 {
		t.Errorf("platform's client.key: got %d links, want 1", n)
	}
	if f.metrics.issued[string(certs.ReasonUnsafeFile)] != 0 {
		t.Errorf("issued for unsafe-file: got %d, want 0", f.metrics.issued[string(certs.ReasonUnsafeFile)])
	}
}
