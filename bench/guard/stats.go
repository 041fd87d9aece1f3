package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/stat; 100 on every Linux ABI.
const clockTick = 10 * time.Millisecond

// cpuTimes is one "cpuN" line of /proc/stat, in clock ticks.
type cpuTimes struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal uint64
}

// busy is the time the CPU ran anything.
func (c cpuTimes) busy() uint64 {
	return c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.User - o.User, c.Nice - o.Nice, c.System - o.System, c.Idle - o.Idle,
		c.IOWait - o.IOWait, c.IRQ - o.IRQ, c.SoftIRQ - o.SoftIRQ, c.Steal - o.Steal}
}

// parseProcStat returns the per-CPU lines of /proc/stat indexed by CPU
// number (the aggregate "cpu" line is skipped: per-CPU lines let the report
// tell the flooding CPU apart).
func parseProcStat(data string) (map[int]cpuTimes, error) {
	out := map[int]cpuTimes{}
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		n, err := strconv.Atoi(f[0][3:])
		if err != nil {
			return nil, fmt.Errorf("parse /proc/stat cpu name %q: %w", f[0], err)
		}
		if len(f) < 9 {
			return nil, fmt.Errorf("parse /proc/stat: short line %q", line)
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
				return nil, fmt.Errorf("parse /proc/stat %s field %d: %w", f[0], i+1, err)
			}
		}
		out[n] = cpuTimes{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
	}
	if len(out) == 0 {
		return nil, errors.New("parse /proc/stat: no cpu lines")
	}
	return out, nil
}

// parseSoftnetDrops sums the second column of /proc/net/softnet_stat: packets
// dropped because a CPU's backlog queue was full, i.e. offered load the
// receive path could not even queue.
func parseSoftnetDrops(data string) (uint64, error) {
	var sum uint64
	for _, line := range strings.Split(strings.TrimSpace(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("parse softnet_stat: %w", err)
		}
		sum += v
	}
	return sum, nil
}

// wrkResult is what the report needs from wrk's text output.
type wrkResult struct {
	Requests uint64
	RPS      float64
	Errors   uint64 // socket errors + non-2xx
}

// parseWrk reads wrk's summary ("N requests in ...", "Requests/sec: X",
// "Socket errors: connect A, read B, write C, timeout D", "Non-2xx ... : N").
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS bool
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("parse wrk rps: %w", err)
			}
			r.RPS, haveRPS = v, true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			v, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("parse wrk requests: %w", err)
			}
			r.Requests = v
		case strings.HasPrefix(line, "Socket errors:"):
			for _, part := range strings.Split(strings.TrimPrefix(line, "Socket errors:"), ",") {
				pf := strings.Fields(part)
				if len(pf) == 2 {
					v, err := strconv.ParseUint(pf[1], 10, 64)
					if err != nil {
						return r, fmt.Errorf("parse wrk socket errors: %w", err)
					}
					r.Errors += v
				}
			}
		case strings.HasPrefix(line, "Non-2xx") && len(f) > 0:
			v, err := strconv.ParseUint(f[len(f)-1], 10, 64)
			if err != nil {
				return r, fmt.Errorf("parse wrk non-2xx: %w", err)
			}
			r.Errors += v
		}
	}
	if !haveRPS {
		return r, errors.New("parse wrk: no Requests/sec line")
	}
	return r, nil
}

// floodFrameLen is the frame trafgen sends without the 4-byte FCS: 14
// Ethernet + 20 IPv4 + 8 UDP + 18 payload = 60, a 64-byte frame on a wire.
const floodFrameLen = 60

// trafgenConf renders a trafgen packet: one minimum-size UDP datagram from
// src to dst:9 (discard), with trafgen's header builders filling in the IPv4
// and UDP checksums. The source port counts up so the flood is not a single
// 5-tuple, as a real flood from one source would not be either.
func trafgenConf(dstMAC, srcMAC string, src, dst netip.Addr) string {
	payload := floodFrameLen - 14 - 20 - 8
	return fmt.Sprintf(`{
  eth(da=%s, sa=%s, type=0x0800),
  ipv4(saddr=%s, daddr=%s, ttl=64, proto=17),
  udp(sport=dinc(1024, 65000), dport=9),
  fill(0x00, %d)
}
`, dstMAC, srcMAC, src, dst, payload)
}

// readUint reads a sysfs counter such as statistics/rx_packets.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// median of xs; 0 for none. xs is not modified.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
