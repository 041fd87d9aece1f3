package capture

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	apicap "github.com/apiwarden/apiwarden/apimodel/capture"
	"github.com/apiwarden/apiwarden/datapath/ringbuf"
)

// record builds a chunk_event record as the kernel writes it.
func record(src, dst netip.AddrPort, seq uint32, data []byte) []byte {
	b := make([]byte, headerLen+len(data))
	le := binary.LittleEndian
	le.PutUint64(b[offTs:], 5_000_000_000)
	if src.Addr().Is4() {
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(b[offSaddr:], s[:])
		copy(b[offDaddr:], d[:])
		b[offFamily] = afInet
	} else {
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(b[offSaddr:], s[:])
		copy(b[offDaddr:], d[:])
		b[offFamily] = afInet6
	}
	le.PutUint16(b[offSport:], src.Port())
	le.PutUint16(b[offDport:], dst.Port())
	le.PutUint32(b[offSeq:], seq)
	le.PutUint32(b[offLen:], uint32(len(data)))
	le.PutUint32(b[offPayloadLen:], uint32(len(data))+3)
	le.PutUint32(b[offIfindex:], 7)
	le.PutUint32(b[offPid:], 42)
	le.PutUint32(b[offConnID:], 9)
	b[offFlags] = apicap.FlagPSH | apicap.FlagACK
	b[offSource] = uint8(apicap.SourceTCEgress)
	copy(b[headerLen:], data)
	return b
}

func TestHeaderLayoutMatchesC(t *testing.T) {
	// offsetof(struct chunk_event, data) in the C header is 80; a change
	// there must show up here, not as garbage in production.
	if headerLen != 80 || MaxChunkData != 16384 {
		t.Fatalf("headerLen %d MaxChunkData %d", headerLen, MaxChunkData)
	}
	if len(counterNames) != int(captureCaptureCounterCNT_MAX) {
		t.Fatalf("%d counter names, CNT_MAX %d", len(counterNames), captureCaptureCounterCNT_MAX)
	}
	for i, n := range counterNames {
		if n == "" {
			t.Errorf("counter %d has no name", i)
		}
	}
}

func TestDecodeChunk(t *testing.T) {
	clk := ClockWithOffset(1_700_000_000_000_000_000)
	for _, tc := range []struct{ src, dst string }{
		{"10.1.2.3:40000", "10.9.8.7:443"},
		{"[2001:db8::1]:5555", "[2001:db8::2]:80"},
	} {
		src, dst := netip.MustParseAddrPort(tc.src), netip.MustParseAddrPort(tc.dst)
		rec := record(src, dst, 123, []byte("hello"))
		c, err := DecodeChunk(rec, clk)
		if err != nil {
			t.Fatal(err)
		}
		want := apicap.Chunk{
			Time: time.Unix(0, 1_700_000_005_000_000_000), Key: apicap.FlowKey{Src: src, Dst: dst},
			Seq: 123, Data: []byte("hello"), PayloadLen: 8, Flags: apicap.FlagPSH | apicap.FlagACK,
			Source: apicap.SourceTCEgress, Ifindex: 7, PID: 42, ConnID: 9,
		}
		if !c.Time.Equal(want.Time) || c.Key != want.Key || !bytes.Equal(c.Data, want.Data) {
			t.Errorf("got %+v\nwant %+v", c, want)
		}
		c.Time, want.Time, c.Data, want.Data = time.Time{}, time.Time{}, nil, nil
		if c.Key != want.Key || c.Seq != want.Seq || c.PayloadLen != want.PayloadLen || c.Flags != want.Flags ||
			c.Source != want.Source || c.Ifindex != want.Ifindex || c.PID != want.PID || c.ConnID != want.ConnID {
			t.Errorf("got %+v\nwant %+v", c, want)
		}
		// Data must not alias the reader's buffer.
		rec[headerLen] = 'X'
		if c2, _ := DecodeChunk(rec, clk); c2.Data[0] != 'X' {
			t.Error("decode did not read the record")
		}
	}
}

func TestDecodeRejectsBadRecords(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2")
	good := record(src, dst, 1, []byte("abcd"))
	lenTooBig := bytes.Clone(good)
	binary.LittleEndian.PutUint32(lenTooBig[offLen:], 5)
	lenHuge := bytes.Clone(good)
	binary.LittleEndian.PutUint32(lenHuge[offLen:], 0xFFFFFFFF)
	badFamily := bytes.Clone(good)
	badFamily[offFamily] = 99
	for name, tc := range map[string]struct {
		rec  []byte
		want error
	}{
		"empty":         {nil, ErrShortRecord},
		"header - 1":    {good[:headerLen-1], ErrShortRecord},
		"data cut":      {good[:len(good)-1], ErrBadLength},
		"len > record":  {lenTooBig, ErrBadLength},
		"len overflows": {lenHuge, ErrBadLength},
		"family":        {badFamily, ErrBadFamily},
	} {
		if _, err := DecodeChunk(tc.rec, Clock{}); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", name, err, tc.want)
		}
	}
	// Every prefix of a valid record decodes or fails cleanly.
	for i := range good {
		DecodeChunk(good[:i], Clock{})
	}
}

func TestRunLoopCountsDecodeErrorsAndStopsOnCancel(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2")
	fake := ringbuf.NewFake(record(src, dst, 1, []byte("a")), []byte{1, 2, 3}, record(src, dst, 2, []byte("b")))
	ctx, cancel := context.WithCancel(context.Background())
	var errs atomic.Uint64
	var got []string
	done := make(chan error)
	go func() {
		done <- runLoop(ctx, fake, Clock{}, func(c apicap.Chunk) {
			got = append(got, string(c.Data))
			if len(got) == 2 {
				cancel()
			}
		}, &errs, slog.New(slog.DiscardHandler))
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runLoop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runLoop did not stop on cancel")
	}
	if len(got) != 2 || got[0] != "a" || got[1] != "b" || errs.Load() != 1 {
		t.Fatalf("chunks %q decode errors %d", got, errs.Load())
	}
}

func BenchmarkDecodeChunk(b *testing.B) {
	rec := record(netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:2"), 1, make([]byte, 200))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeChunk(rec, Clock{}); err != nil {
			b.Fatal(err)
		}
	}
}
