package http2

import (
	"errors"

	"golang.org/x/net/http2/hpack"
)

// hpackAllowedTable caps the dynamic table a peer may ask for (the decoder
// holds up to this many bytes per direction). Peers that announce more in
// SETTINGS_HEADER_TABLE_SIZE and use it make the decoder lose sync; it then
// recovers as after a mid-connection join.
const hpackAllowedTable = 64 << 10

// unknownName is the name given to a dynamic-table entry whose name we never
// saw (joined mid-connection): the entry keeps the table positions of later
// entries right; fields that refer to it are dropped, not shown.
const unknownName = "\x00unknown"

// headerDecoder wraps an hpack.Decoder for one direction. It feeds the
// decoder one field representation at a time, so a reference to a dynamic
// entry we never saw costs that one field and not the block.
//
// Why that is exact: the dynamic table is a FIFO with the newest entry at
// index 62. A decoder started late holds the newest k entries the encoder
// inserted since, at the same indices; everything older is at indices we
// do not have. Our table is never larger than the encoder's (it evicts by
// the same rule on fewer bytes), so an index we hold means what the encoder
// meant, and an index we do not hold is reported as missing.
type headerDecoder struct {
	dec *hpack.Decoder
	// partial: the table may lack entries (joined mid-connection, or a
	// header block was lost).
	partial bool
	// fields of the block being decoded.
	fields    []hpack.HeaderField
	listSize  int // RFC 9113 header list size of fields (name+value+32 each)
	maxList   int
	truncated bool // fields over maxList were dropped
	missing   int  // fields not recovered in this block
	scratch   []byte
}

func newHeaderDecoder(maxList int, partial bool) *headerDecoder {
	h := &headerDecoder{maxList: maxList, partial: partial}
	h.reset(partial)
	return h
}

// reset starts over with an empty table; after that the decoder knows only
// the entries inserted from now on.
func (h *headerDecoder) reset(partial bool) {
	h.dec = hpack.NewDecoder(4096, h.emit)
	h.dec.SetAllowedMaxDynamicTableSize(hpackAllowedTable)
	h.partial = partial
}

func (h *headerDecoder) emit(f hpack.HeaderField) {
	if f.Name == unknownName {
		h.missing++
		return
	}
	n := len(f.Name) + len(f.Value) + 32
	if h.listSize+n > h.maxList {
		h.truncated = true
		return
	}
	h.listSize += n
	h.fields = append(h.fields, f)
}

var (
	errHPACKSyntax = errors.New("hpack: malformed block")
)

// decode decodes one complete header block into h.fields. An error means
// the block was malformed: the table may now differ from the encoder's and
// the caller resets the decoder.
func (h *headerDecoder) decode(block []byte) error {
	h.fields = h.fields[:0]
	h.listSize, h.truncated, h.missing = 0, false, 0
	defer h.dec.Close()
	for len(block) > 0 {
		n, kind, nameIdx, nameEnd := splitField(block)
		if n <= 0 {
			return errHPACKSyntax
		}
		field := block[:n]
		block = block[n:]
		_, err := h.dec.Write(field)
		if err == nil {
			continue
		}
		var ie hpack.InvalidIndexError
		var de hpack.DecodingError
		if !errors.As(err, &de) || !errors.As(de.Err, &ie) {
			return err
		}
		// An index we do not hold: possible only when the table is
		// incomplete (or the stream is garbage).
		if !h.partial {
			return err
		}
		switch {
		case kind == fieldIndexed:
			h.missing++
		case nameIdx > 0 && kind == fieldIncremental:
			// The encoder inserted (unknown name, value): insert a
			// placeholder so later indices stay right.
			h.scratch = append(h.scratch[:0], 0x40)
			h.scratch = appendString(h.scratch, unknownName)
			h.scratch = append(h.scratch, field[nameEnd:]...)
			if _, err := h.dec.Write(h.scratch); err != nil {
				return err
			}
		default:
			// Literal not indexed with an unknown name: nothing to
			// keep in sync, the field is lost.
			h.missing++
		}
	}
	return nil
}

const (
	fieldIndexed = iota
	fieldIncremental
	fieldLiteral // without indexing or never indexed
	fieldSizeUpdate
)

// splitField returns the length of the first field representation of b
// (0 if incomplete or malformed), its kind, the name index of a literal and
// the offset where the literal's name index ends.
func splitField(b []byte) (n, kind int, nameIdx uint64, nameEnd int) {
	var prefix byte
	switch c := b[0]; {
	case c&0x80 != 0:
		_, m := varint(b, 7)
		return m, fieldIndexed, 0, 0
	case c&0xc0 == 0x40:
		kind, prefix = fieldIncremental, 6
	case c&0xe0 == 0x20:
		_, m := varint(b, 5)
		return m, fieldSizeUpdate, 0, 0
	default: // 0000xxxx, 0001xxxx
		kind, prefix = fieldLiteral, 4
	}
	idx, m := varint(b, prefix)
	if m <= 0 {
		return 0, kind, 0, 0
	}
	nameEnd = m
	if idx == 0 {
		s := stringLen(b[m:])
		if s <= 0 {
			return 0, kind, 0, 0
		}
		m += s
	}
	s := stringLen(b[m:])
	if s <= 0 {
		return 0, kind, 0, 0
	}
	return m + s, kind, idx, nameEnd
}

// varint decodes an HPACK integer with an n-bit prefix; m is the number of
// bytes used, 0 if b is short or the value overflows.
func varint(b []byte, n byte) (v uint64, m int) {
	if len(b) == 0 {
		return 0, 0
	}
	mask := uint64(1)<<n - 1
	v = uint64(b[0]) & mask
	if v < mask {
		return v, 1
	}
	var shift uint
	for i := 1; i < len(b); i++ {
		c := b[i]
		v += uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, i + 1
		}
		shift += 7
		if shift >= 63 {
			return 0, 0
		}
	}
	return 0, 0
}

// stringLen returns the encoded size of the HPACK string at b[0].
func stringLen(b []byte) int {
	l, m := varint(b, 7)
	if m <= 0 || l > uint64(len(b)-m) {
		return 0
	}
	return m + int(l)
}

func appendString(b []byte, s string) []byte {
	// Raw (non-Huffman) string with a 7-bit prefix length.
	l := uint64(len(s))
	if l < 127 {
		b = append(b, byte(l))
	} else {
		b = append(b, 127)
		l -= 127
		for l >= 128 {
			b = append(b, byte(l&0x7f|0x80))
			l >>= 7
		}
		b = append(b, byte(l))
	}
	return append(b, s...)
}

// requestSide inspects the first field of a header block with only the
// static table: 1 if it is a request pseudo-header, 0 a response one
// (:status), -1 unknown.
func requestSide(block []byte) int {
	if len(block) == 0 {
		return -1
	}
	var idx uint64
	switch c := block[0]; {
	case c&0x80 != 0:
		idx, _ = varint(block, 7)
	case c&0xc0 == 0x40:
		idx, _ = varint(block, 6)
	case c&0xe0 == 0x20:
		// Size update first: look at the next field.
		_, m := varint(block, 5)
		if m <= 0 {
			return -1
		}
		return requestSide(block[m:])
	default:
		idx, _ = varint(block, 4)
	}
	switch {
	case idx >= 1 && idx <= 7:
		return 1 // :authority, :method, :path, :scheme
	case idx >= 8 && idx <= 14:
		return 0 // :status
	}
	return -1
}
