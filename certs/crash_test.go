package certs_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// The crash test re-executes the test binary as a writer that publishes
// bundles in a loop, SIGKILLs it at a random moment, and then reads the
// bundle the way a container does. A SIGKILL proves atomicity against a
// process crash; the fsyncs that extend it to power loss are argued in
// volume_write.go, not tested. These variables carry the set-up to the
// writer.
const (
	crashWriterDirEnv  = "CRANK_CERTS_CRASH_WRITER_DIR" // volume dir; set only in the writer
	crashBundlesEnv    = "CRANK_CERTS_CRASH_BUNDLES"    // dir holding <k>/<file> for each bundle
	crashStartEnv      = "CRANK_CERTS_CRASH_START"      // index of the first bundle to write
	crashIterationsEnv = "CRASH_ITERATIONS"             // how many kills; default crashDefaultIterations

	crashDefaultIterations = 200
	crashMaxKillDelay      = 30 * time.Millisecond
	crashMaxKillWindow     = 100 * time.Millisecond // on a very slow disk
	crashService           = "web"
	// crashBundleCount is 3 so that "old or new" is a real check: after a
	// kill the third bundle must not be visible.
	crashBundleCount = 3
	// crashWriterLifetime stops an orphaned writer whose parent died.
	crashWriterLifetime = 30 * time.Second
)

// TestCrashWriterProcess is the writer half of TestCrashSafety. It only runs
// in the subprocess; it loops WriteBundle over the bundles and reports
// "done <k> <nanoseconds it took>" on fd 3 after each write returns.
func TestCrashWriterProcess(t *testing.T) {
	dir := os.Getenv(crashWriterDirEnv)
	if dir == "" {
		t.Skip("runs only as the writer subprocess of TestCrashSafety")
	}
	report := os.NewFile(3, "report")
	bundles := loadCrashBundles(t, os.Getenv(crashBundlesEnv))
	start, err := strconv.Atoi(os.Getenv(crashStartEnv))
	if err != nil {
		t.Fatalf("parsing %s: %v", crashStartEnv, err)
	}
	v, err := certs.OpenVolume(dir)
	if err != nil {
		t.Fatalf("OpenVolume: %v", err)
	}
	if _, err := fmt.Fprintln(report, "ready"); err != nil {
		t.Fatalf("reporting ready: %v", err)
	}
	deadline := time.Now().Add(crashWriterLifetime)
	for i := start; time.Now().Before(deadline); i++ {
		k := i % len(bundles)
		t0 := time.Now()
		if _, err := v.WriteBundle(crashService, bundles[k], keepOwner); err != nil {
			fmt.Fprintf(report, "error %v\n", err)
			t.Fatalf("WriteBundle: %v", err)
		}
		// One write(2) per line, so a kill never leaves half a line. A
		// failure means the parent is gone: stop.
		if _, err := fmt.Fprintf(report, "done %d %d\n", k, time.Since(t0)); err != nil {
			return
		}
	}
}

func TestCrashSafety(t *testing.T) {
	if os.Getenv(crashWriterDirEnv) != "" {
		t.Skip("this is the writer subprocess")
	}
	iterations := crashDefaultIterations
	if testing.Short() {
		iterations = 20
	}
	if s := os.Getenv(crashIterationsEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive integer", crashIterationsEnv, s)
		}
		iterations = n
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("crash test: %d kills, seed %d", iterations, seed)

	bundles := make([]*certs.BundleFiles, crashBundleCount)
	for k := range bundles {
		bundles[k] = crashIssuance(t, k)
	}
	bundlesDir := saveCrashBundles(t, bundles)
	volDir := filepath.Join(t.TempDir(), "certs")
	serviceDir := filepath.Join(volDir, crashService)
	v, err := certs.OpenVolume(volDir)
	if err != nil {
		t.Fatalf("OpenVolume: %v", err)
	}
	t.Cleanup(func() { v.Close() })
	if _, err := v.WriteBundle(crashService, bundles[0], keepOwner); err != nil {
		t.Fatalf("initial WriteBundle: %v", err)
	}

	// The kill must be able to land in every phase of a write, including
	// the swap and cleanup at its end, however slow fsync is on this disk
	// (or under -race, or while other tests load it). So the window is
	// crashMaxKillDelay, or a little more than the writer's recent writes
	// took if that is longer (capped to bound the runtime); and in one
	// iteration in four the kill waits for a first completed write, so
	// kills after a swap happen even when a write outlasts the window.
	typical := time.Duration(0) // moving average of the writer's write durations
	began := time.Now()
	visible, writes, killsAfterAWrite, leftovers := 0, 0, 0, 0
	for it := range iterations {
		window := min(max(crashMaxKillDelay, typical*5/4), crashMaxKillWindow)
		plan := crashKill{
			afterFirstWrite: rng.IntN(4) == 0,
			delay:           time.Duration(rng.Int64N(int64(window) + 1)),
		}
		start := (visible + 1) % crashBundleCount
		run := runAndKillCrashWriter(t, plan, volDir, bundlesDir, start)
		writes += run.done
		for _, d := range run.took {
			if typical == 0 {
				typical = d
			}
			typical = (4*typical + d) / 5
		}

		// Old or new: with no completed write, the previous bundle or the
		// one being written; otherwise the last completed one or its
		// successor (whose swap may have happened before the report).
		allowed := []int{visible, start}
		if run.done > 0 {
			allowed = []int{run.last, (run.last + 1) % crashBundleCount}
			killsAfterAWrite++
		}
		got := checkVisibleCrashBundle(t, serviceDir, bundles)
		if got != allowed[0] && got != allowed[1] {
			t.Fatalf("kill %d: visible bundle is #%d, want #%d (old) or #%d (new)", it, got, allowed[0], allowed[1])
		}
		visible = got

		// What the controller reads must be what containers see.
		rb, err := v.ReadBundle(crashService)
		if err != nil {
			t.Fatalf("kill %d: ReadBundle: %v", it, err)
		}
		if k := crashBundleIndex(bundleContent(rb), bundles); k != visible {
			t.Fatalf("kill %d: ReadBundle returned bundle #%d, want the visible #%d", it, k, visible)
		}

		// A completed write cleans up everything older kills left behind,
		// so at most the current generation, the one being written and
		// ..data_tmp can remain.
		stray := strayEntries(t, serviceDir)
		if len(stray) > 0 {
			leftovers++
		}
		if run.done > 0 && len(stray) > 3 {
			t.Fatalf("kill %d: leftovers accumulate: got %q, want at most 3 entries", it, stray)
		}
	}
	elapsed := time.Since(began)

	// The next write after all those kills succeeds and leaves a clean dir.
	gen, err := v.WriteBundle(crashService, bundles[(visible+1)%crashBundleCount], keepOwner)
	if err != nil {
		t.Fatalf("WriteBundle after the kills: %v", err)
	}
	wantLayout(t, serviceDir, gen)
	t.Logf("crash test: %d kills in %v; writer's writes took ~%v; %d writes completed; "+
		"%d kills came after a completed write; %d left leftovers for the next writer",
		iterations, elapsed.Round(time.Millisecond), typical.Round(time.Millisecond), writes, killsAfterAWrite, leftovers)
}

// crashKill says when to kill the writer.
type crashKill struct {
	afterFirstWrite bool          // wait for the first "done" report before the delay
	delay           time.Duration // random; the kill point, not a wait for a condition
}

// crashRun is what the writer reported before it was killed.
type crashRun struct {
	done int             // writes completed
	last int             // bundle index of the last completed write
	took []time.Duration // duration of each completed write
}

// runAndKillCrashWriter starts the writer, waits until it is ready (and, if
// planned, until its first write completed), SIGKILLs it after the planned
// delay and returns its reports.
func runAndKillCrashWriter(t *testing.T, plan crashKill, volDir, bundlesDir string, start int) crashRun {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var output bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashWriterProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashWriterDirEnv+"="+volDir, crashBundlesEnv+"="+bundlesDir, crashStartEnv+"="+strconv.Itoa(start))
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting writer: %v", err)
	}
	w.Close() // the child holds its own copy; EOF comes when it dies
	fail := func(format string, args ...any) {
		t.Helper()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("writer: "+format+"; output:\n%s", append(args, output.String())...)
	}
	br := bufio.NewReader(r)
	if line, err := br.ReadString('\n'); line != "ready\n" {
		fail("got first report %q (err %v), want \"ready\"", line, err)
	}
	var run crashRun
	parse := func(line string) {
		t.Helper()
		var k int
		var ns int64
		if _, err := fmt.Sscanf(line, "done %d %d\n", &k, &ns); err != nil {
			fail("got report %q, want \"done <k> <ns>\"", line)
		}
		run.done, run.last, run.took = run.done+1, k, append(run.took, time.Duration(ns))
	}
	if plan.afterFirstWrite {
		line, err := br.ReadString('\n')
		if err != nil {
			fail("reading first write report: %v", err)
		}
		parse(line)
	}
	time.Sleep(plan.delay)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing writer: %v", err)
	}
	_ = cmd.Wait() // "signal: killed"; an early exit shows up as an "error" report below
	for {
		line, err := br.ReadString('\n')
		if err == io.EOF && line == "" {
			return run
		}
		if err != nil {
			t.Fatalf("reading writer reports: got %q, %v", line, err)
		}
		parse(line)
	}
}

// checkVisibleCrashBundle reads the five files through the visible symlinks,
// as a container would, asserts they form one complete issuance and returns
// which of bundles it is.
func checkVisibleCrashBundle(t *testing.T, serviceDir string, bundles []*certs.BundleFiles) int {
	t.Helper()
	got := readVisible(t, serviceDir) // fails on any missing file
	if _, err := tls.X509KeyPair([]byte(got[certs.FileServerCert]), []byte(got[certs.FileServerKey])); err != nil {
		t.Fatalf("tls.crt and tls.key do not match: %v", err)
	}
	if _, err := tls.X509KeyPair([]byte(got[certs.FileClientCert]), []byte(got[certs.FileClientKey])); err != nil {
		t.Fatalf("client.crt and client.key do not match: %v", err)
	}
	ca := parseCrashCert(t, got[certs.FileCA])
	for _, name := range []string{certs.FileServerCert, certs.FileClientCert} {
		if err := parseCrashCert(t, got[name]).CheckSignatureFrom(ca); err != nil {
			t.Fatalf("%s is not signed by the visible ca.crt (mixed issuances): %v", name, err)
		}
	}
	k := crashBundleIndex(got, bundles)
	if k < 0 {
		t.Fatalf("visible bundle matches none of the bundles the writer may have written")
	}
	return k
}

// crashBundleIndex returns the index of the bundle whose files all equal
// got, or -1.
func crashBundleIndex(got map[string]string, bundles []*certs.BundleFiles) int {
	for k, b := range bundles {
		want := bundleContent(b)
		same := true
		for _, name := range volumeFileNames {
			same = same && got[name] == want[name]
		}
		if same {
			return k
		}
	}
	return -1
}

// strayEntries lists ".."-entries other than ..data and its target.
func strayEntries(t *testing.T, serviceDir string) []string {
	t.Helper()
	current, err := os.Readlink(filepath.Join(serviceDir, "..data"))
	if err != nil {
		t.Fatalf("reading ..data: %v", err)
	}
	var stray []string
	for _, name := range dirNames(t, serviceDir) {
		if strings.HasPrefix(name, "..") && name != "..data" && name != current {
			stray = append(stray, name)
		}
	}
	return stray
}

func parseCrashCert(t *testing.T, pemText string) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		t.Fatalf("no PEM block in %q", pemText)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parsing certificate: %v", err)
	}
	return cert
}
