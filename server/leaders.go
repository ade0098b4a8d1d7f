package server

import (
	"sort"

	"github.com/valyala/fasthttp"

	"github.com/sluice-streams/sluice/server/wire"
	"github.com/sluice-streams/sluice/stream"
)

// LeaderLocator is implemented by a Peer that knows which node leads each shard. The native
// leaders request answers with it, so that the Go client sends each shard's records straight
// to the node that leads the shard instead of through a node that would forward them.
type LeaderLocator interface {
	// Leaders returns the API address (host:port) of the node leading each shard of stream
	// that this node knows a leader for.
	Leaders(stream string) map[stream.ShardID]string
}

// nativeLeaders serves POST /sluice/v1/leaders: the leader of each shard of a stream, as
// this node knows them; none from a server that is not a cluster node.
func (s *Server) nativeLeaders(ctx *fasthttp.RequestCtx, c *opCall) {
	name, err := wire.ReadLeadersRequest(ctx.Request.Body())
	if err != nil {
		s.nativeFail(ctx, wire.Serialization, "leaders: "+err.Error())
		return
	}
	if err := s.authorizeStream(c, bytesString(name)); err != nil {
		s.nativeError(ctx, err)
		return
	}
	if _, err := s.engine.Describe(string(name)); err != nil {
		s.nativeError(ctx, err)
		return
	}
	var leaders map[stream.ShardID]string
	if ll, ok := s.peer.(LeaderLocator); ok {
		leaders = ll.Leaders(string(name))
	}
	shards := make([]stream.ShardID, 0, len(leaders))
	for id, addr := range leaders {
		if addr != "" && len(addr) <= wire.MaxAddrLen {
			shards = append(shards, id)
		}
	}
	sort.Slice(shards, func(i, j int) bool { return shards[i] < shards[j] })
	out := wire.AppendLeadersHead(nil, len(shards))
	for _, id := range shards {
		out = wire.AppendShardLeader(out, uint32(id), leaders[id])
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(wire.ContentType)
	ctx.SetBody(out)
}
