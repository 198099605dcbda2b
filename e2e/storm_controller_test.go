//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// hostController is bin/controller run as a process on the host, so the
// storm can read its CPU and memory from /proc without a container's
// runtime in the figures. Each start is a new process over the same state
// dir and certs root, as after an operator's restart.
type hostController struct {
	bin, stateDir, certsRoot, project, logPath string
	listen                                     string // 127.0.0.1:<port>, the same across restarts

	cmd     *exec.Cmd
	exited  chan struct{} // closed once cmd.Wait returned
	started time.Time
	cpu     *cpuSampler
}

// stormProbeInterval is the operator's default probe interval; the storm
// measures the controller as it would run, not as the fast e2e tests do.
const stormProbeInterval = 30 * time.Second

func newHostController(bin, dir, project string) (*hostController, error) {
	c := &hostController{bin: bin, project: project,
		stateDir: filepath.Join(dir, "state"), certsRoot: filepath.Join(dir, "certs"), logPath: filepath.Join(dir, "controller.log")}
	for _, d := range []string{c.stateDir, c.certsRoot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("finding a free loopback port: %w", err)
	}
	c.listen = ln.Addr().String()
	ln.Close()
	return c, nil
}

// start runs a new controller process in observe mode with the given
// probe and resync intervals.
func (c *hostController) start(probe, resync time.Duration) error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(c.bin, "run")
	cmd.Env = append(withoutCrankEnv(os.Environ()),
		"CRANK_MODE=observe", "CRANK_STATE_DIR="+c.stateDir, "CRANK_CERTS_ROOT="+c.certsRoot,
		"CRANK_PROJECT="+c.project, "CRANK_LISTEN="+c.listen, "CRANK_PROBE_INTERVAL="+probe.String(),
		"CRANK_RESYNC_INTERVAL="+resync.String(), "CRANK_LOG_FORMAT=json", "CRANK_LOG_LEVEL=info")
	if addr := os.Getenv("STORM_PPROF"); addr != "" {
		// For a heap profile at the peak; GODEBUG=memprofilerate=N passes
		// through like any variable that is not CRANK_*.
		cmd.Env = append(cmd.Env, "CRANK_PPROF_LISTEN="+addr)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.bin, err)
	}
	c.cmd, c.started, c.exited = cmd, time.Now(), make(chan struct{})
	c.cpu = newCPUSampler(cmd.Process.Pid, c.started)
	go func() {
		_ = cmd.Wait()
		close(c.exited)
	}()
	return nil
}

// withoutCrankEnv drops the caller's CRANK_* settings, so the storm runs
// with exactly the configuration its report states.
func withoutCrankEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CRANK_") {
			out = append(out, kv)
		}
	}
	return out
}

// stop sends SIGTERM and waits for the exit; a process that outlives the
// shutdown budget is killed.
func (c *hostController) stop() error {
	if c.cmd == nil {
		return nil
	}
	defer c.cpu.stop()
	select {
	case <-c.exited:
		return errors.New("controller had already exited; see " + c.logPath)
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return errors.New("controller ignored SIGTERM for 20s and was killed")
	}
}

// waitReady polls /readyz and returns the time from process start to the
// first 200.
func (c *hostController) waitReady(timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		code, _, _, err := c.get("/readyz")
		if err == nil && code == http.StatusOK {
			return time.Since(c.started), nil
		}
		select {
		case <-c.exited:
			return 0, errors.New("controller exited before it was ready; see " + c.logPath)
		default:
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not ready within %s (last: %d %v); see %s", timeout, code, err, c.logPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loopback never goes through a proxy and never reuses a connection, so
// each timing includes one connect, as a dashboard poll would.
var loopback = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// get fetches path from the controller's listener and returns the status,
// the body and how long the whole exchange took.
func (c *hostController) get(path string) (int, []byte, time.Duration, error) {
	start := time.Now()
	resp, err := loopback.Get("http://" + c.listen + path)
	if err != nil {
		return 0, nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, time.Since(start), err
}

// errorLines counts the ERROR lines the controller logged so far.
func (c *hostController) errorLines() int {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return -1
	}
	return strings.Count(string(data), `"level":"ERROR"`)
}

// cpuSampler reads utime+stime of one process every cpuSampleEvery, so CPU
// over any window of its life can be read afterwards; /proc/<pid> is gone
// once the process is reaped.
type cpuSampler struct {
	pid   int
	start time.Time
	mu    sync.Mutex
	at    []time.Duration // since start
	ticks []int64
	done  chan struct{}
	once  sync.Once
}

const cpuSampleEvery = 50 * time.Millisecond

func newCPUSampler(pid int, start time.Time) *cpuSampler {
	s := &cpuSampler{pid: pid, start: start, done: make(chan struct{})}
	s.sample()
	go func() {
		t := time.NewTicker(cpuSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.done:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *cpuSampler) stop() { s.once.Do(func() { close(s.done) }) }

func (s *cpuSampler) sample() {
	ticks, err := procCPUTicks(s.pid)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Since(s.start))
	s.ticks = append(s.ticks, ticks)
}

// now samples at once and returns the process's CPU so far.
func (s *cpuSampler) now() time.Duration {
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return ticksToDuration(s.ticks[len(s.ticks)-1])
}

// at returns the CPU used by offset since the process started, from the
// last sample taken at or before it.
func (s *cpuSampler) cpuAt(offset time.Duration) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ticks int64
	for i, at := range s.at {
		if at > offset {
			break
		}
		ticks = s.ticks[i]
	}
	return ticksToDuration(ticks)
}

// lastOffset is how far into the process's life the samples reach.
func (s *cpuSampler) lastOffset() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at[len(s.at)-1]
}

// quietAfter returns the first offset after from at which the process used
// less than quietShare of one core over the preceding quietSpan, or false
// if that had not happened by until.
func (s *cpuSampler) quietAfter(from, until time.Duration) (time.Duration, bool) {
	for t := from + quietSpan; t <= until; t += cpuSampleEvery {
		if s.cpuAt(t)-s.cpuAt(t-quietSpan) < time.Duration(quietShare*float64(quietSpan)) {
			return t, true
		}
	}
	return 0, false
}

// A process counts as quiet once it uses under a tenth of a core for a
// second: steady probing of 1,000 containers every 30s stays well under it,
// a queue of reconciles does not.
const (
	quietSpan  = time.Second
	quietShare = 0.10
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

func ticksToDuration(t int64) time.Duration { return time.Duration(t) * clockTick }

// procCPUTicks returns utime+stime of pid.
func procCPUTicks(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields after it are
	// counted from its closing parenthesis. utime and stime are fields 14
	// and 15, so the 12th and 13th after the name.
	i := strings.LastIndexByte(string(data), ')')
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %w", pid, err)
	}
	return u + s, nil
}

// peakRSS returns VmHWM, the process's peak resident set size.
func (c *hostController) peakRSS() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc/<pid>/status")
}
