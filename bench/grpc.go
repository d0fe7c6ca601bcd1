package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// rawCodec passes []byte messages through untouched, so the gRPC baselines need no protoc and
// pay no protobuf cost that jsn's msgpack bodies do not pay either.
type rawCodec struct{}

func (rawCodec) Name() string { return "raw" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: unmarshal %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// grpcLab is a gRPC server on loopback TCP with a unary echo and a bidirectional-stream tunnel to
// a TCP address (the transport Jumpstarter and labgrid's gRPC coordinator use), and a client.
type grpcLab struct {
	srv  *grpc.Server
	ln   net.Listener
	conn *grpc.ClientConn
	wg   sync.WaitGroup
}

const grpcService = "jsnbench.Bench"

func startGRPC(tunnelTo string) (*grpcLab, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g := &grpcLab{ln: ln, srv: grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))}
	desc := grpc.ServiceDesc{
		ServiceName: grpcService,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Echo", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var b []byte
			if err := dec(&b); err != nil {
				return nil, err
			}
			return &b, nil
		}}},
		Streams: []grpc.StreamDesc{{StreamName: "Tunnel", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error { return serveTunnel(ss, tunnelTo) }}},
	}
	g.srv.RegisterService(&desc, struct{}{})
	g.wg.Add(1)
	go func() { defer g.wg.Done(); _ = g.srv.Serve(ln) }()
	g.conn, err = grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

func (g *grpcLab) close() {
	if g.conn != nil {
		g.conn.Close()
	}
	g.srv.Stop()
	g.wg.Wait()
}

func (g *grpcLab) echo(ctx context.Context, payload []byte) error {
	var out []byte
	return g.conn.Invoke(ctx, "/"+grpcService+"/Echo", &payload, &out)
}

// serveTunnel dials addr and copies the stream's messages to it and its bytes back as messages,
// the server half of a gRPC port forward.
func serveTunnel(ss grpc.ServerStream, addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	errc := make(chan error, 1)
	go func() {
		var b []byte
		for {
			if err := ss.RecvMsg(&b); err != nil {
				_ = c.(*net.TCPConn).CloseWrite()
				if errors.Is(err, io.EOF) {
					err = nil
				}
				errc <- err
				return
			}
			if _, err := c.Write(b); err != nil {
				errc <- err
				return
			}
		}
	}()
	if err := sendAll(c, ss); err != nil {
		return err
	}
	return <-errc
}

// forwardGRPC accepts connections on ln and tunnels each through a Tunnel stream until ctx ends,
// the client half of a gRPC port forward.
func (g *grpcLab) forward(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() { <-ctx.Done(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = g.tunnel(ctx, c.(*net.TCPConn))
		}()
	}
}

func (g *grpcLab) tunnel(ctx context.Context, c *net.TCPConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := g.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/"+grpcService+"/Tunnel")
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		var b []byte
		for {
			if err := st.RecvMsg(&b); err != nil {
				_ = c.CloseWrite()
				errc <- err
				return
			}
			if _, err := c.Write(b); err != nil {
				errc <- err
				return
			}
		}
	}()
	if err := sendAll(c, st); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	select {
	case err := <-errc:
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	case <-time.After(5 * time.Minute):
		return errors.New("grpc tunnel: no end of stream")
	}
}

// sendAll sends what c yields, in messages of up to 64 KiB, until c's read side ends.
func sendAll(c net.Conn, s interface{ SendMsg(any) error }) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			b := buf[:n]
			if err := s.SendMsg(&b); err != nil {
				return err
			}
		}
		if err != nil {
			return nil
		}
	}
}
