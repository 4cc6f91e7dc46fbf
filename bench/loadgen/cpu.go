package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where the machine's CPU went during a scenario, in cores (1.0 = one
// core busy the whole time), from Linux's /proc. On a small machine the
// load generator competes with the server, and PostgreSQL, Redis and
// whatever else runs there compete with both; these figures say how much.

// userHZ is the unit of /proc CPU times; it is 100 on every Linux
// architecture Go supports.
const userHZ = 100

type cpuSample struct {
	at             time.Time
	busy, total    float64 // machine, seconds summed over cores
	self, server   float64 // seconds
	services       float64 // seconds, PostgreSQL and Redis processes
	haveMachine    bool
	haveServerProc bool
}

// cpuUse is a scenario's CPU, in cores.
type cpuUse struct {
	Cores   int     `json:"cores"`
	Server  float64 `json:"server,omitempty"` // the gatehouse process (needs --server-pid)
	Loadgen float64 `json:"loadgen"`
	// Services are the PostgreSQL and Redis processes (all of them: other
	// users of the same servers count too).
	Services float64 `json:"postgres_redis"`
	// Other is every other busy process: the kernel, other users of the
	// machine.
	Other float64 `json:"other"`
	Idle  float64 `json:"idle"`
}

func readCPU(serverPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = tv(ru.Utime) + tv(ru.Stime)
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		if len(f) >= 8 && f[0] == "cpu" {
			// user nice system idle iowait irq softirq steal [guest guest_nice]:
			// guest time is already counted in user.
			for i, x := range f[1:min(len(f), 9)] {
				v, _ := strconv.ParseFloat(x, 64)
				s.total += v / userHZ
				if i != 3 && i != 4 { // not idle, not iowait
					s.busy += v / userHZ
				}
			}
			s.haveMachine = true
		}
	}
	if serverPID > 0 {
		if _, t, ok := procCPU(strconv.Itoa(serverPID)); ok {
			s.server, s.haveServerProc = t, true
		}
	}
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if e.Name()[0] < '0' || e.Name()[0] > '9' {
				continue
			}
			if comm, t, ok := procCPU(e.Name()); ok && (comm == "postgres" || comm == "redis-server") {
				s.services += t
			}
		}
	}
	return s
}

// procCPU returns the command name and the user plus system CPU seconds of
// process pid (threads included; exited children not).
func procCPU(pid string) (comm string, secs float64, ok bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return "", 0, false
	}
	// pid (comm) state … with utime and stime the 14th and 15th fields.
	i, j := strings.IndexByte(string(b), '('), strings.LastIndexByte(string(b), ')')
	if i < 0 || j < i {
		return "", 0, false
	}
	f := strings.Fields(string(b)[j+1:])
	if len(f) < 13 {
		return "", 0, false
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return string(b)[i+1 : j], (u + st) / userHZ, true
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// cpuBetween returns the CPU use between two samples, or nil when the
// machine figures are not available.
func cpuBetween(a, b cpuSample, cores int) *cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	if !a.haveMachine || !b.haveMachine || wall <= 0 || b.total <= a.total {
		return nil
	}
	// /proc/stat totals advance by cores × wall; scale busy by that so
	// the figures are in cores.
	scale := float64(cores) / (b.total - a.total)
	busy := (b.busy - a.busy) * scale
	u := &cpuUse{Cores: cores, Loadgen: (b.self - a.self) / wall, Idle: float64(cores) - busy}
	if a.haveServerProc && b.haveServerProc {
		u.Server = (b.server - a.server) / wall
	}
	u.Services = (b.services - a.services) / wall
	u.Other = max(0, busy-u.Server-u.Loadgen-u.Services)
	return u
}

func (u *cpuUse) String() string {
	server := ""
	if u.Server > 0 {
		server = fmt.Sprintf("server %.2f, ", u.Server)
	}
	return fmt.Sprintf("%sload generator %.2f, postgres+redis %.2f, other %.2f, idle %.2f (of %d cores)",
		server, u.Loadgen, u.Services, u.Other, u.Idle, u.Cores)
}
