package tls

import (
	"time"
	"unsafe"

	"github.com/apiwarden/apiwarden/apimodel/capture"
	dpcapture "github.com/apiwarden/apiwarden/datapath/capture"
)

// chunkHeaderSize is the part of struct chunk_event before data[]: a ring
// buffer record is the header plus len bytes of data.
const chunkHeaderSize = int(unsafe.Offsetof(tlsBpfChunkEvent{}.Data))

// decodeChunk turns one ring buffer record into a capture.Chunk. The TLS
// probes emit the same struct chunk_event as the TC capture (one C
// definition), so the capture package's decoder serves both; bootTime is the
// wall-clock time of monotonic zero. Data is a copy.
func decodeChunk(raw []byte, bootTime time.Time) (capture.Chunk, error) {
	return dpcapture.DecodeChunk(raw, dpcapture.ClockWithOffset(bootTime.UnixNano()))
}

// MaxChunkData is the most plaintext bytes one Chunk carries
// (MAX_CHUNK_DATA); a TLS call moving more is split into several chunks.
const MaxChunkData = len(tlsBpfChunkEvent{}.Data)
