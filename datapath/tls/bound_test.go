package tls

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/apiwarden/apiwarden/apimodel/capture"
)

// TestWriteBeyondChunkBound: one SSL_write of 2 MiB is more than
// TLS_MAX_CHUNKS_PER_CALL * MAX_CHUNK_DATA (1 MiB). The first 1 MiB arrives,
// the last allowed chunk's PayloadLen covers the rest (a gap userspace can
// see), the truncation is counted, and the next response on the same
// connection starts at the offset after the full 2 MiB.
func TestWriteBeyondChunkBound(t *testing.T) {
	s, c := startSensor(t)
	spid, port := startPyServer(t, "1.3")
	_ = s.AttachPID(spid)
	const big = 2 << 20
	url := fmt.Sprintf("https://127.0.0.1:%d/size/", port)
	_, body := runClient(t, "curl", "-sk", "--http1.1", url+fmt.Sprint(big), url+"4")
	if len(body) != big+4 {
		t.Fatalf("curl got %d bytes", len(body))
	}
	var chunks []capture.Chunk
	ok := waitFor(t, 5*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		chunks = chunks[:0]
		var total uint64
		for _, ch := range c.chunks {
			if int(ch.PID) == spid && ch.Source == capture.SourceTLSWrite {
				chunks = append(chunks, ch)
				total += uint64(ch.PayloadLen)
			}
		}
		return total >= big+4+2*17 // two bodies plus headers
	})
	if !ok {
		t.Fatalf("server write chunks incomplete (%d chunks)", len(chunks))
	}
	sort.Slice(chunks, func(i, j int) bool { return chunks[i].Seq < chunks[j].Seq })
	next, truncated := chunks[0].Seq, 0
	var lastBig capture.Chunk
	for _, ch := range chunks {
		if ch.Seq != next {
			t.Fatalf("offset %d, want %d", ch.Seq, next)
		}
		if uint32(len(ch.Data)) < ch.PayloadLen {
			truncated++
			lastBig = ch
		}
		next = ch.Seq + ch.PayloadLen
	}
	if truncated != 1 {
		t.Fatalf("%d truncated chunks, want 1", truncated)
	}
	if len(lastBig.Data) != MaxChunkData || lastBig.PayloadLen <= uint32(MaxChunkData) {
		t.Errorf("truncated chunk has %d of %d bytes", len(lastBig.Data), lastBig.PayloadLen)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Kernel["chunks_truncated"] == 0 || st.Kernel["bytes_truncated"] == 0 {
		t.Errorf("truncation not counted: %+v", st.Kernel)
	}
	t.Logf("stats %+v", st.Kernel)
}
