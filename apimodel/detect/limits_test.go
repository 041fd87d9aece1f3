package detect

import (
	"fmt"
	"strings"
	"testing"
)

func TestInspectBytesBound(t *testing.T) {
	d := newDetector(t, Config{MaxInspectBytes: 1024})
	// The payload sits after the byte budget: it is not inspected, and the
	// bound is counted.
	pad := strings.Repeat("a", 2000)
	req := post("/x", formCT, "pad="+pad+"&q=%3Cscript%3Ealert(1)%3C/script%3E")
	if fs := d.Inspect(req, "svc"); len(fs) != 0 {
		t.Errorf("inspected past the bound: %+v", fs)
	}
	if st := d.Stats(); st.BytesLimitHits != 1 || st.BytesInspected > 1024 {
		t.Errorf("stats = %+v, want one bytes limit hit and <= 1024 bytes", st)
	}
	// Exactly at the bound is still inspected.
	d = newDetector(t, Config{MaxInspectBytes: 1024})
	val := "%3Cscript%3E" + strings.Repeat("b", 1024-len("%3Cscript%3E"))
	if fs := d.Inspect(get("/x?q="+val), "svc"); len(fs) == 0 {
		t.Error("value exactly at the bound not inspected")
	}
}

func TestInspectPartsBound(t *testing.T) {
	d := newDetector(t, Config{MaxParts: 10})
	var q []string
	for i := 0; i < 20; i++ {
		q = append(q, fmt.Sprintf("p%d=v+%d", i, i))
	}
	q = append(q, "x=%3Cscript%3Ealert(1)%3C/script%3E")
	if fs := d.Inspect(get("/x?"+strings.Join(q, "&")), "svc"); len(fs) != 0 {
		t.Errorf("inspected past the parts bound: %+v", fs)
	}
	st := d.Stats()
	if st.PartsLimitHits != 1 || st.PartsInspected != 10 {
		t.Errorf("stats = %+v, want 1 parts limit hit and 10 parts", st)
	}
}

func TestJSONDepthBound(t *testing.T) {
	d := newDetector(t, Config{MaxJSONDepth: 4})
	deep := strings.Repeat(`{"a":`, 10) + `"<script>alert(1)</script>"` + strings.Repeat("}", 10)
	if fs := d.Inspect(post("/x", jsonCT, deep), "svc"); len(fs) != 0 {
		t.Errorf("inspected below the depth bound: %+v", fs)
	}
	if d.Stats().DepthLimitHits == 0 {
		t.Error("depth limit not counted")
	}
	shallow := strings.Repeat(`{"a":`, 3) + `"<script>alert(1)</script>"` + strings.Repeat("}", 3)
	if fs := d.Inspect(post("/x", jsonCT, shallow), "svc"); len(fs) == 0 {
		t.Error("value within the depth bound not inspected")
	}
	// Pathological nesting must neither recurse without bound nor fail.
	huge := strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20)
	d.Inspect(post("/x", jsonCT, huge), "svc")
}

func TestFindingsBound(t *testing.T) {
	d := newDetector(t, Config{MaxFindings: 3})
	var q []string
	for i := 0; i < 10; i++ {
		q = append(q, fmt.Sprintf("p%d=%%3Cscript%%3Ealert(1)%%3C/script%%3E", i))
	}
	if fs := d.Inspect(get("/x?"+strings.Join(q, "&")), "svc"); len(fs) != 3 {
		t.Errorf("got %d findings, want 3", len(fs))
	}
	if d.Stats().FindingsDropped == 0 {
		t.Error("dropped findings not counted")
	}
}

func TestBrokenJSONFallsBackToText(t *testing.T) {
	d := newDetector(t, Config{})
	fs := d.Inspect(post("/x", jsonCT, `{"a": "<script>alert(1)</script>"`), "svc")
	for _, f := range fs {
		if f.Part == "body" {
			return
		}
	}
	t.Errorf("truncated JSON not inspected as text: %+v", fs)
}

func TestMultipart(t *testing.T) {
	d := newDetector(t, Config{})
	body := "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n<script>alert(1)</script>\r\n" +
		"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../../etc/cron.d/x\"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01binary\r\n--XyZ--\r\n"
	fs := d.Inspect(post("/upload", "multipart/form-data; boundary=XyZ", body), "svc")
	c := classes(fs)
	if !c["xss"] || !c["traversal"] {
		t.Errorf("multipart fields not inspected: %+v", fs)
	}
}

func TestConcurrentInspect(t *testing.T) {
	d := newDetector(t, Config{})
	reqs := []func() int{
		func() int { return len(d.Inspect(get("/x?q=%3Cscript%3Ealert(1)%3C/script%3E"), "a")) },
		func() int { return len(d.Inspect(post("/x", jsonCT, `{"a":{"$ne":1},"b":"O'Brien"}`), "b")) },
		func() int { return len(d.Inspect(get("/x?q=hello+world"), "c")) },
	}
	want := make([]int, len(reqs))
	for i, f := range reqs {
		want[i] = f()
	}
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				k := (i + g) % len(reqs)
				if got := reqs[k](); got != want[k] {
					done <- fmt.Errorf("request %d: %d findings, want %d", k, got, want[k])
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
