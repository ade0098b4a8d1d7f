package cli

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-streams/sluice/client"
)

func TestMessage(t *testing.T) {
	err := error(&client.Error{Name: "ResourceNotFoundException", Message: "Stream x not found.", Op: "get"})
	if got := Message(err, "http://h:1"); got != "ResourceNotFoundException: Stream x not found." {
		t.Errorf("Message = %q", got)
	}
	if got := Message(inputf("limit %d", 0), ""); got != "limit 0" || !strings.HasPrefix(got, "limit") {
		t.Errorf("Message = %q", got)
	}
}

func TestMessageUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.New(client.Config{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetRecords(testCtx(t), "s", client.GetInput{Start: client.TrimHorizon})
	if got := Message(err, endpoint); !strings.HasPrefix(got, "cannot reach "+endpoint+": ") {
		t.Errorf("Message = %q", got)
	}
	if got := Message(err, ""); !strings.HasPrefix(got, "cannot reach the server: ") {
		t.Errorf("Message = %q", got)
	}
}

// testCtx returns a context that ends with the test or after a minute, whichever is first.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
