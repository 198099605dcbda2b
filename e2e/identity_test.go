//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// The hostile-tenant scenario on the real engine. An identity (bundle
// directory, client CN, SPIFFE ID) belongs to the first compose project and
// service that holds it. Tenants of the same engine try to take platform's:
// by run-time label, from inside and from outside the project; by an image
// LABEL; by a network alias; and by planting a named pipe and a hard link
// in their own bundle, which the controller reads and chowns.
//
// Run it alone with: go test -tags e2e ./e2e -run TestIdentity -v

// identAttackerUID is the uid every attacker runs as; platform's keys
// belong to identPlatformOwner, so a chown to the attacker shows.
const (
	identAttackerUser  = "1000:1000"
	identAttackerUID   = 1000
	identPlatformOwner = "2000:2000"
)

func TestIdentityHostileTenantsGetNothingOfPlatform(t *testing.T) {
	t.Parallel()
	certs := t.TempDir() // first: removed after the containers writing into it
	h := H(t)
	project := tnProject(t, h, "e2eident")
	foreign := project + "-foreign"
	// The victim's name is unique to the run: the foreign claimant opts in
	// with crank.security.enable=true, so every controller on the engine
	// (those of tests running alongside) manages it, and it must not take a
	// name another test's service holds.
	victim := "platform-" + project[len(project)-6:]
	netName := tnNetwork(t, h, project+"-net")
	// Built before the controller starts, so no build runs inside a measured
	// interval; its cleanup removes the image's containers, then the image.
	imageTag := tnImageWithLabels(t, h, project+"-intruder:latest", map[string]string{"crank.security.service": victim})
	f := tnStartController(t, h, project, netName, certs, "CRANK_MODE=enforce")

	// A healthy platform at mtls, whose keys belong to 2000:2000 (its User).
	platform := h.RunService(t, WithService(victim), WithProject(project), WithNetwork(netName),
		WithCertsMount(certs, "/certs"), WithUser(identPlatformOwner), CreateOnly())
	f.startService(t, platform)
	WaitFor(t, lvDeadline, func() (bool, string) { return f.checkMTLS(t, platform) })
	before, err := tnReadBundle(certs, victim)
	if err != nil {
		t.Fatalf("reading platform's bundle: %v", err)
	}
	if before.ServerKeyOwner != identPlatformOwner || before.ClientKeyOwner != identPlatformOwner {
		t.Fatalf("got platform's keys owned by %s and %s, want %s before any attack (the scenario proves nothing otherwise)",
			before.ServerKeyOwner, before.ClientKeyOwner, identPlatformOwner)
	}
	t.Logf("platform before the attacks: %s", before)

	// Watch, for the whole scenario, that the controller stays ready and
	// that nothing of platform's is ever owned by an attacker.
	ready := tnStartMonitor(t, "/readyz stays ready", 250*time.Millisecond, func() string {
		if ok, status := tnReady(h, f.ctrl); !ok {
			return status
		}
		return ""
	})
	chowned := tnStartMonitor(t, "platform is never chowned to an attacker", 100*time.Millisecond, func() string {
		return strings.Join(tnOwnedBy(filepath.Join(certs, victim), identAttackerUID), ", ")
	})

	attackStart := time.Now()
	attacker := func(service string, opts ...ServiceOption) *Container {
		base := []ServiceOption{WithService(service), WithProject(project),
			WithCertsMount(certs, "/certs"), WithUser(identAttackerUser),
			// The ladder would restart an attacker serving plain; that is
			// noise here, and an attacker sets its own labels anyway.
			WithLabels(map[string]string{"crank.security.on-drift": "report"})}
		return h.RunService(t, append(base, opts...)...)
	}
	claim := map[string]string{"crank.security.service": victim}
	byLabel := attacker("intruder-label", WithNetwork(netName), WithLabels(claim))
	byForeignLabel := attacker("intruder-foreign", WithNetwork(netName), WithProject(foreign),
		WithLabels(map[string]string{"crank.security.service": victim, "crank.security.enable": "true"}))
	byImage := attacker("intruder-image", WithNetwork(netName),
		WithConfig(func(c *container.Config, _ *container.HostConfig) { c.Image = imageTag }))
	byAlias := attacker("intruder-alias", WithNetwork(netName, victim))
	tenant := attacker("tenant", WithNetwork(netName))

	// The tenant, once it has its bundle, swaps tls.key in its current
	// generation for a named pipe (a naive reader blocks on it for good)
	// and client.key for a hard link to platform's client.key (a naive chown
	// of its own files then hands platform's key to it).
	tenantDir := filepath.Join(certs, "tenant")
	var tenantGen string
	WaitFor(t, lvDeadline, func() (bool, string) {
		gen, err := tnGeneration(tenantDir)
		if err != nil {
			return false, "tenant has no bundle yet: " + err.Error()
		}
		if _, err := os.Stat(filepath.Join(tenantDir, gen, "client.key")); err != nil {
			return false, err.Error()
		}
		tenantGen = gen
		return true, ""
	})
	// The controller rewrites the tenant's bundle as soon as it sees the
	// first plant, which can remove the generation before the second: then
	// both are planted again, in the new generation.
	WaitFor(t, lvDeadline, func() (bool, string) {
		gen, err := tnGeneration(tenantDir)
		if err != nil {
			return false, "tenant's generation: " + err.Error()
		}
		platformGen, err := tnGeneration(filepath.Join(certs, victim))
		if err != nil {
			return false, "platform's generation: " + err.Error()
		}
		if out, err := tnExec(h, tenant.ID, identAttackerUser, "/testservice", "mkfifo", "/certs/tenant/"+gen+"/tls.key"); err != nil {
			return false, fmt.Sprintf("planting the named pipe as %s: %v %s", identAttackerUser, err, out)
		}
		// fs.protected_hardlinks (on by default) stops uid 1000 from linking
		// a file it cannot write; root in the tenant's container can, and so
		// can uid 1000 on a host that turned the protection off.
		if out, err := tnExec(h, tenant.ID, "0:0", "/testservice", "link",
			"/certs/"+victim+"/"+platformGen+"/client.key", "/certs/tenant/"+gen+"/client.key"); err != nil {
			return false, fmt.Sprintf("planting the hard link: %v %s", err, out)
		}
		tenantGen = gen
		return true, ""
	})
	planted := time.Now()
	t.Logf("planted a named pipe and a hard link to platform's client.key in tenant's generation %s", tenantGen)

	// The controller has looked: every attacker is in the status, and
	// platform was probed twice since the attacks began.
	attackers := map[string]*Container{"intruder-label": byLabel, "intruder-foreign": byForeignLabel,
		"intruder-image": byImage, "intruder-alias": byAlias, "tenant": tenant}
	platformProbes := newProbeCounter(platform.ID, planted)
	WaitFor(t, lvDeadline, func() (bool, string) {
		rep, err := tnStatus(h, f.ctrl)
		if err != nil {
			return false, err.Error()
		}
		var missing []string
		for name, c := range attackers {
			if _, ok := rep.byID(c.ID); !ok {
				missing = append(missing, name)
			}
		}
		n := platformProbes.observe(rep)
		return len(missing) == 0 && n >= 2, fmt.Sprintf("attackers not in the status: %v; platform probed %d times since the plant, want 2\n%s",
			missing, n, f.logTail(t))
	})
	identCheckPlatformUnchanged(t, certs, victim, before)

	// Each attack is reported with its reason.
	want := map[string]tnFinding{
		"intruder-label":   {Source: "identity", Reason: "identity-conflict"},
		"intruder-foreign": {Source: "identity", Reason: "identity-conflict"},
		"intruder-image":   {Source: "identity", Reason: "label-from-image"},
		"intruder-alias":   {Source: "identity", Reason: "alias-conflict"},
		"tenant":           {Source: "bundle", Reason: "unsafe-file"},
	}
	// A report is kept once seen. A damaged bundle is rewritten in the pass
	// that finds it, so its finding may never outlive that pass; the status
	// then keeps it as the reason the bundle was last issued.
	reported := map[string]tnContainer{}
	isReported := func(name string, st tnContainer) bool {
		_, found := st.finding(want[name].Source, want[name].Reason)
		return found || (want[name].Source == "bundle" && st.Bundle.IssuedReason == want[name].Reason)
	}
	WaitFor(t, lvDeadline, func() (bool, string) {
		rep, err := tnStatus(h, f.ctrl)
		if err != nil {
			return false, err.Error()
		}
		var lacking []string
		for name, c := range attackers {
			if _, done := reported[name]; done {
				continue
			}
			st, ok := rep.byID(c.ID)
			if !ok || !isReported(name, st) {
				lacking = append(lacking, fmt.Sprintf("%s: want %s/%s, got %s", name, want[name].Source, want[name].Reason, st))
				continue
			}
			reported[name] = st
		}
		return len(lacking) == 0, "attackers not reported yet:\n  " + strings.Join(lacking, "\n  ")
	})
	t.Logf("MEASURE: identity: plant -> every attack reported = %s", time.Since(planted).Round(time.Millisecond))
	for name, st := range reported {
		t.Logf("reported: %s", st)
		if st.Container != attackers[name].Name {
			t.Errorf("%s: got status under container %q, want its own name %q", name, st.Container, attackers[name].Name)
		}
	}
	for _, name := range []string{"intruder-label", "intruder-foreign"} {
		fd, _ := reported[name].finding("identity", "identity-conflict")
		if !strings.Contains(fd.Message, victim) || !strings.Contains(fd.Message, project) {
			t.Errorf("%s: got identity-conflict message %q, want it to name the owner (service platform of project %s)", name, fd.Message, project)
		}
	}

	// The tenant's damaged bundle is rewritten: a new generation whose keys
	// are regular files of its own, one link each.
	WaitFor(t, lvDeadline, func() (bool, string) {
		gen, err := tnGeneration(tenantDir)
		if err != nil || gen == tenantGen {
			return false, fmt.Sprintf("tenant still on generation %s (%v)", tenantGen, err)
		}
		for _, name := range []string{"tls.key", "client.key"} {
			fi, err := os.Lstat(filepath.Join(tenantDir, gen, name))
			if err != nil {
				return false, err.Error()
			}
			if !fi.Mode().IsRegular() || tnLinks(fi) != 1 {
				return false, fmt.Sprintf("tenant's %s in %s: mode %s, %d links", name, gen, fi.Mode(), tnLinks(fi))
			}
		}
		return true, ""
	})

	// The impostors got nothing of platform's: the alias-holder's own
	// certificate is not valid for platform, and the image-labelled one
	// holds its own identity.
	if alias, err := tnReadBundle(certs, "intruder-alias"); err != nil {
		t.Errorf("intruder-alias: got no bundle of its own (%v), want one without the alias platform", err)
	} else if slices.Contains(alias.SANs, victim) || !slices.Contains(alias.SANs, "intruder-alias") {
		t.Errorf("intruder-alias: got SANs %v, want intruder-alias and not platform", alias.SANs)
	}
	if img, err := tnReadBundle(certs, "intruder-image"); err != nil {
		t.Errorf("intruder-image: got no bundle of its own (%v), want one under its compose service name", err)
	} else if slices.Contains(img.SANs, victim) {
		t.Errorf("intruder-image: got SANs %v, want platform not among them", img.SANs)
	}

	// Nothing happened to platform: after two more probes it still holds
	// its bundle, owned as before, and serves it.
	tnWaitProbed(t, f, platform.ID, time.Now(), 2)
	identCheckPlatformUnchanged(t, certs, victim, before)
	WaitFor(t, 30*time.Second, func() (bool, string) { return f.checkMTLS(t, platform) })

	// The workers are free: a service created now gets its bundle in the
	// time the core tests allow a parallel run (15 s).
	created := time.Now()
	h.RunService(t, WithService("fresh"), WithProject(project), WithNetwork(netName), WithCertsMount(certs, "/certs"),
		WithLabels(reportOnly))
	WaitFor(t, 15*time.Second, func() (bool, string) {
		b, err := tnReadBundle(certs, "fresh")
		return err == nil, fmt.Sprintf("fresh: %v (%s)", err, b)
	})
	t.Logf("MEASURE: identity: create of a fresh service after the attacks -> bundle on disk = %s", time.Since(created).Round(time.Millisecond))

	ready.Stop()
	chowned.Stop()
	ready.check(t)
	chowned.check(t)
	t.Logf("MEASURE: identity: attacks started -> scenario done = %s", time.Since(attackStart).Round(time.Millisecond))
}

// identCheckPlatformUnchanged compares platform's bundle on disk with the
// one it had before the attacks.
func identCheckPlatformUnchanged(t *testing.T, certs, victim string, before tnBundle) {
	t.Helper()
	now, err := tnReadBundle(certs, victim)
	if err != nil {
		t.Errorf("reading platform's bundle: %v", err)
		return
	}
	if now.ServerSerial != before.ServerSerial || now.ClientSerial != before.ClientSerial {
		t.Errorf("got platform serials server %s client %s, want %s and %s (no reissue)",
			now.ServerSerial, now.ClientSerial, before.ServerSerial, before.ClientSerial)
	}
	if !slices.Equal(now.SANs, before.SANs) {
		t.Errorf("got platform SANs %v, want %v", now.SANs, before.SANs)
	}
	if now.ServerKeyOwner != before.ServerKeyOwner || now.ClientKeyOwner != before.ClientKeyOwner {
		t.Errorf("got platform keys owned by %s (tls.key) and %s (client.key), want %s", now.ServerKeyOwner, now.ClientKeyOwner, before.ServerKeyOwner)
	}
}
