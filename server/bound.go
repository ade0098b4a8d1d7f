package server

import "github.com/sluice-streams/sluice/stream"

// DecodeAndPut decodes a Kinesis JSON PutRecords body and puts its records through eng: the
// server's PutRecords operation without HTTP, authentication, rate limits or the answer. It
// returns how many records the engine did not append. It exists so that the bench tool
// measures the JSON-decode + append bound of the PutRecords path on the code the server runs.
func DecodeAndPut(eng *stream.Engine, body []byte) (failed int, err error) {
	p := getPutBatch()
	defer p.release()
	if err := p.decodePutRecords(body); err != nil {
		return 0, err
	}
	res, err := eng.PutRecords(p.ref.StreamName, p.entries)
	if err != nil {
		return 0, err
	}
	for _, r := range res {
		if r.Err != nil {
			failed++
		}
	}
	return failed, nil
}
