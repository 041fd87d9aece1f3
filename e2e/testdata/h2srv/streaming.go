package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// echoService has one method of each streaming kind, declared by hand so
// the test program needs no protoc: Chat echoes every message (bidi), Sum
// answers once with the count of the client's messages (client streaming),
// Feed answers one message with three copies (server streaming). Messages
// are google.protobuf.StringValue.
var echoService = grpc.ServiceDesc{
	ServiceName: "test.v1.Echo",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{
		{StreamName: "Chat", ServerStreams: true, ClientStreams: true, Handler: chat},
		{StreamName: "Sum", ClientStreams: true, Handler: sum},
		{StreamName: "Feed", ServerStreams: true, Handler: feed},
	},
}

func chat(_ any, s grpc.ServerStream) error {
	for {
		m := new(wrapperspb.StringValue)
		if err := s.RecvMsg(m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := s.SendMsg(m); err != nil {
			return err
		}
	}
}

func sum(_ any, s grpc.ServerStream) error {
	n := 0
	for {
		if err := s.RecvMsg(new(wrapperspb.StringValue)); errors.Is(err, io.EOF) {
			return s.SendMsg(wrapperspb.String(fmt.Sprint(n)))
		} else if err != nil {
			return err
		}
		n++
	}
}

func feed(_ any, s grpc.ServerStream) error {
	m := new(wrapperspb.StringValue)
	if err := s.RecvMsg(m); err != nil {
		return err
	}
	if m.Value == "fail" {
		return status.Error(codes.InvalidArgument, "feed refused")
	}
	for range 3 {
		if err := s.SendMsg(m); err != nil {
			return err
		}
	}
	return nil
}

// streamClient calls Chat with 3 messages, Sum with 4, Feed with 1 and a
// failing Feed on one connection, and prints the messages received per
// method and the final status codes as JSON.
func streamClient(cc *grpc.ClientConn) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type result struct {
		Received int    `json:"received"`
		Code     string `json:"code"`
	}
	out := map[string]result{}
	call := func(key string, i int, msgs ...string) {
		d := &echoService.Streams[i]
		st, err := cc.NewStream(ctx, d, "/"+echoService.ServiceName+"/"+d.StreamName)
		if err != nil {
			log.Fatal(err)
		}
		for _, m := range msgs {
			if err := st.SendMsg(wrapperspb.String(m)); err != nil {
				log.Fatal(err)
			}
		}
		if err := st.CloseSend(); err != nil {
			log.Fatal(err)
		}
		n := 0
		for {
			err := st.RecvMsg(new(wrapperspb.StringValue))
			if err == nil {
				n++
				continue
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
			out[key] = result{Received: n, Code: status.Code(err).String()}
			return
		}
	}
	call("Chat", 0, "a", "b", "c")
	call("Sum", 1, "1", "2", "3", "4")
	call("Feed", 2, "x")
	call("FeedFail", 2, "fail")
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		log.Fatal(err)
	}
}
