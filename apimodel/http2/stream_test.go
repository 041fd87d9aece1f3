package http2

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// echoDesc is a tiny streaming service built without protoc: Chat echoes
// every message (bidi), Sum answers once after the client's stream (client
// streaming), Feed sends three messages for one (server streaming).
var echoDesc = grpc.ServiceDesc{
	ServiceName: "test.v1.Echo",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Chat", ServerStreams: true, ClientStreams: true, Handler: func(_ any, s grpc.ServerStream) error {
			for {
				m := new(wrapperspb.StringValue)
				if err := s.RecvMsg(m); errors.Is(err, io.EOF) {
					return status.Error(codes.Aborted, "done 100%")
				} else if err != nil {
					return err
				}
				if err := s.SendMsg(m); err != nil {
					return err
				}
			}
		}},
		{StreamName: "Sum", ClientStreams: true, Handler: func(_ any, s grpc.ServerStream) error {
			n := 0
			for {
				m := new(wrapperspb.StringValue)
				if err := s.RecvMsg(m); errors.Is(err, io.EOF) {
					return s.SendMsg(wrapperspb.String(string(rune('0' + n))))
				} else if err != nil {
					return err
				}
				n++
			}
		}},
		{StreamName: "Feed", ServerStreams: true, Handler: func(_ any, s grpc.ServerStream) error {
			m := new(wrapperspb.StringValue)
			if err := s.RecvMsg(m); err != nil {
				return err
			}
			for i := 0; i < 3; i++ {
				if err := s.SendMsg(m); err != nil {
					return err
				}
			}
			return nil
		}},
	},
}

func TestGRPCStreamingKinds(t *testing.T) {
	l := listen(t)
	s := grpc.NewServer()
	s.RegisterService(&echoDesc, struct{}{})
	go s.Serve(l)
	cc, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run := func(i, send int) {
		st, err := cc.NewStream(ctx, &echoDesc.Streams[i], "/test.v1.Echo/"+echoDesc.Streams[i].StreamName)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < send; j++ {
			if err := st.SendMsg(wrapperspb.String("hello")); err != nil {
				t.Fatal(err)
			}
		}
		st.CloseSend()
		for {
			if err := st.RecvMsg(new(wrapperspb.StringValue)); err != nil {
				break
			}
		}
	}
	run(0, 3)
	run(1, 4)
	run(2, 1)
	cc.Close()
	s.Stop()
	ev := l.events()[0]
	want := []string{
		`grpc POST /test.v1.Echo/Chat? body=36 -> 200 body=36 grpc=test.v1.Echo/Chat status=10 msgs=3/3`,
		`grpc POST /test.v1.Echo/Sum? body=48 -> 200 body=8 grpc=test.v1.Echo/Sum status=0 msgs=4/1`,
		`grpc POST /test.v1.Echo/Feed? body=12 -> 200 body=36 grpc=test.v1.Echo/Feed status=0 msgs=1/3`,
	}
	res := checkReplays(t, Config{}, ev, want)
	kinds := map[string]string{}
	for _, c := range res.calls {
		kinds[c.GRPC.Method] = c.GRPC.Kind()
		if c.GRPC.Method == "Chat" && c.GRPC.Message != "done 100%" {
			t.Errorf("grpc-message %q", c.GRPC.Message)
		}
		if c.GRPC.ReqBytes != int64(c.GRPC.ReqMessages)*7 {
			t.Errorf("%s: %d request payload bytes for %d messages", c.GRPC.Method, c.GRPC.ReqBytes, c.GRPC.ReqMessages)
		}
	}
	if kinds["Chat"] != "bidi-streaming" || kinds["Sum"] != "client-streaming" || kinds["Feed"] != "server-streaming" {
		t.Fatalf("kinds %v", kinds)
	}
}
