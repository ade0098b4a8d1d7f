// Package iam evaluates AWS IAM policies for sluice: it parses policy documents and decides
// whether a principal may perform a Kinesis action on a resource, as AWS decides it.
//
// What it owns: the policy language (Version 2012-10-17 and 2008-10-17; Statement as an
// object or an array; Sid, Effect, Action/NotAction, Resource/NotResource,
// Principal/NotPrincipal, Condition with the string, numeric, date, Bool, BinaryEquals,
// IP, ARN and Null operators, their …IfExists forms and the ForAnyValue/ForAllValues
// prefixes, policy variables such as ${aws:username} in 2012-10-17 documents), the
// evaluation logic (Decide), the AccessDenied message (Decision.Message)
// and the table of the Kinesis operations' actions and resources (Actions, NativeActions).
//
// What it does not own: it knows nothing of HTTP, SigV4 or where policies are kept. The
// server authenticates a request, builds a Request (principal, action, resource ARN, source
// address, TLS, time), finds the user's identity policies and the resource's policy, calls
// Decide and answers AccessDeniedException with Decision.Message when it denies. Parse
// errors wrap ErrMalformed; PutResourcePolicy answers them with InvalidArgumentException (the
// Kinesis model has no MalformedPolicyDocumentException), and an IAM file holding one is
// refused.
//
// Evaluation order (Decide): a statement applies when its action, resource, principal
// (resource policies) and all its conditions match; an applicable Deny anywhere is an
// explicit deny; otherwise, within one account an Allow in either policy type allows, and
// across accounts an Allow is needed in both the identity policies and a resource policy
// naming the principal; otherwise the request is implicitly denied. Not modelled:
// permissions boundaries, service control and resource control policies, session
// policies, the ${*} and ${?} variables, and condition keys
// other than aws:SourceIp, aws:SecureTransport, aws:CurrentTime, aws:EpochTime,
// aws:PrincipalAccount, aws:PrincipalArn, aws:username and aws:userid (any other key is
// absent from every request).
//
// Concurrency: a *Policy is immutable once Parse returns it and safe for concurrent use by
// any number of goroutines; Decide reads its arguments and keeps nothing. Parse once,
// evaluate many times: Decide allocates nothing on the usual path (BenchmarkDecide).
//
// Durability: none; the package holds no state.
package iam
