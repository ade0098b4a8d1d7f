package audit

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Line format. Every line is one JSON object followed by '\n', its members in this order
// (names as in an AWS CloudTrail record, plus the two chain members first):
//
//	previousLineSha256  hex SHA-256 of the previous line's bytes without '\n' (64 zeros first)
//	sequence            1, 2, 3, … across files
//	eventVersion        "1.11"
//	userIdentity        {type, principalId, arn, accountId, accessKeyId, userName}
//	eventTime           RFC 3339 in UTC, to the second, when the call was answered
//	eventSource         "kinesis.amazonaws.com"
//	eventName           the operation: CreateStream, PutRecord, … (native: NativePut, …)
//	awsRegion, sourceIPAddress, userAgent
//	requestParameters   the request's members, never record data; null when none
//	responseElements    small results of a call that changes something; null for reads
//	errorCode, errorMessage  present only for a failed or denied call
//	requestID           the x-amzn-RequestId of the answer
//	eventID             a random UUID
//	readOnly            the call changes nothing
//	resources           [{accountId, type, ARN}]
//	eventType           "AwsApiCall"
//	managementEvent     a control-plane call
//	recipientAccountId  the server's account
//	eventCategory       "Management" or "Data"
//
// Changing the format: add members after eventCategory and move eventVersion's minor number;
// never rename or reorder: the chain covers the bytes, and readers may be positional.

// Version is the eventVersion of the lines written.
const Version = "1.11"

// Identity types (userIdentity.type).
const (
	IAMUser    = "IAMUser"    // a user of the server's IAM file
	AWSAccount = "AWSAccount" // a signed request whose signature is not verified
	Anonymous  = "Anonymous"  // an unsigned request
)

// Identity is who made a call.
type Identity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId,omitempty"`
	ARN         string `json:"arn,omitempty"`
	AccountID   string `json:"accountId,omitempty"`
	AccessKeyID string `json:"accessKeyId,omitempty"`
	UserName    string `json:"userName,omitempty"`
}

// Resource is a resource a call named.
type Resource struct {
	AccountID string `json:"accountId,omitempty"`
	Type      string `json:"type"` // AWS::Kinesis::Stream or AWS::Kinesis::StreamConsumer
	ARN       string `json:"ARN"`
}

// Event is one API call, as the server knows it once it has answered.
type Event struct {
	Time      time.Time // when the call was answered; the zero time means now
	Name      string    // the operation
	Region    string
	SourceIP  string
	UserAgent string
	Identity  Identity
	// RequestParameters and ResponseElements are JSON objects, or nil for null. The caller
	// leaves out record data and secrets; Log does not look inside.
	RequestParameters json.RawMessage
	ResponseElements  json.RawMessage
	ErrorCode         string // "" for a call that succeeded
	ErrorMessage      string
	RequestID         string
	EventID           string // "" means a new random UUID
	ReadOnly          bool
	Resources         []Resource
	RecipientAccount  string
	Management        bool // a control-plane call; false for a data-plane one
}

// record is an Event as the line holds it, after the chain members.
type record struct {
	EventVersion       string          `json:"eventVersion"`
	UserIdentity       Identity        `json:"userIdentity"`
	EventTime          string          `json:"eventTime"`
	EventSource        string          `json:"eventSource"`
	EventName          string          `json:"eventName"`
	AWSRegion          string          `json:"awsRegion"`
	SourceIPAddress    string          `json:"sourceIPAddress"`
	UserAgent          string          `json:"userAgent"`
	RequestParameters  json.RawMessage `json:"requestParameters"`
	ResponseElements   json.RawMessage `json:"responseElements"`
	ErrorCode          string          `json:"errorCode,omitempty"`
	ErrorMessage       string          `json:"errorMessage,omitempty"`
	RequestID          string          `json:"requestID"`
	EventID            string          `json:"eventID"`
	ReadOnly           bool            `json:"readOnly"`
	Resources          []Resource      `json:"resources,omitempty"`
	EventType          string          `json:"eventType"`
	ManagementEvent    bool            `json:"managementEvent"`
	RecipientAccountID string          `json:"recipientAccountId"`
	EventCategory      string          `json:"eventCategory"`
}

// TimeFormat is eventTime's layout: RFC 3339 in UTC, to the second, as CloudTrail writes it.
const TimeFormat = "2006-01-02T15:04:05Z"

// encode returns ev's members as a JSON object without its opening brace: the writer puts
// the chain members in front.
func encode(ev *Event) ([]byte, error) {
	t := ev.Time
	if t.IsZero() {
		t = time.Now()
	}
	id := ev.EventID
	if id == "" {
		id = newUUID()
	}
	category := "Data"
	if ev.Management {
		category = "Management"
	}
	b, err := json.Marshal(&record{
		EventVersion: Version, UserIdentity: ev.Identity, EventTime: t.UTC().Format(TimeFormat),
		EventSource: "kinesis.amazonaws.com", EventName: ev.Name, AWSRegion: ev.Region,
		SourceIPAddress: ev.SourceIP, UserAgent: ev.UserAgent,
		RequestParameters: nullIfEmpty(ev.RequestParameters), ResponseElements: nullIfEmpty(ev.ResponseElements),
		ErrorCode: ev.ErrorCode, ErrorMessage: ev.ErrorMessage, RequestID: ev.RequestID, EventID: id,
		ReadOnly: ev.ReadOnly, Resources: ev.Resources, EventType: "AwsApiCall", ManagementEvent: ev.Management,
		RecipientAccountID: ev.RecipientAccount, EventCategory: category,
	})
	if err != nil {
		return nil, err
	}
	return b[1:], nil
}

func nullIfEmpty(m json.RawMessage) json.RawMessage {
	if len(m) == 0 {
		return nil
	}
	return m
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[0:8]) + "-" + string(h[8:12]) + "-" + string(h[12:16]) + "-" + string(h[16:20]) + "-" + string(h[20:32])
}
