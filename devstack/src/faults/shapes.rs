//! AWS-shaped error responses, as each service's protocol returns them, so the SDKs parse
//! them into the same modeled errors and retry classes as the real thing.
//!
//! - DynamoDB / DynamoDB Streams / SQS (awsJson1_0) and EventBridge (awsJson1_1): status +
//!   `{"__type": ..., "message": ...}` + `x-amzn-RequestId` (+ `x-amz-crc32` for DynamoDB,
//!   + `x-amzn-query-error` for SQS, whose SDK is query-compatible).
//! - S3 (REST-XML): status + `<Error><Code>..</Code><Message>..</Message>..</Error>` +
//!   `x-amz-request-id` / `x-amz-id-2`; no body on `HEAD`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::plan::{Fault, Operation, Service};

/// The error response for `fault` (an error fault, not latency, reset or partial).
pub(crate) fn error_response(
    op: &Operation,
    fault: &Fault,
    request_id: &str,
    head: bool,
) -> Response<Full<Bytes>> {
    let (status, code, message) = error_parts(op.service, fault);
    match op.service {
        Service::S3 => {
            let body = if head {
                Bytes::new()
            } else {
                Bytes::from(format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>{message}</Message><RequestId>{request_id}</RequestId>\
                     <HostId>{request_id}</HostId></Error>"
                ))
            };
            let mut r = Response::new(Full::new(body));
            *r.status_mut() = status;
            let h = r.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            insert(h, "x-amz-request-id", request_id);
            insert(h, "x-amz-id-2", request_id);
            r
        }
        service => {
            let body =
                Bytes::from(serde_json::json!({ "__type": code, "message": message }).to_string());
            json_response(service, status, body, request_id, Some(code))
        }
    }
}

/// A JSON-protocol response with the headers the service sends.
pub(crate) fn json_response(
    service: Service,
    status: StatusCode,
    body: Bytes,
    request_id: &str,
    error_code: Option<&str>,
) -> Response<Full<Bytes>> {
    let crc = (matches!(service, Service::DynamoDb | Service::DynamoDbStreams))
        .then(|| crc32(&body).to_string());
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    let content_type = if service == Service::EventBridge {
        "application/x-amz-json-1.1"
    } else {
        "application/x-amz-json-1.0"
    };
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    insert(h, "x-amzn-requestid", request_id);
    if let Some(crc) = crc {
        insert(h, "x-amz-crc32", &crc);
    }
    if let (Service::Sqs, Some(code)) = (service, error_code) {
        let short = code.rsplit('#').next().unwrap_or(code);
        let fault = if status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        };
        insert(h, "x-amzn-query-error", &format!("{short};{fault}"));
    }
    r
}

fn insert(h: &mut hyper::HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// `(status, error code as __type / <Code>, message)`.
fn error_parts(service: Service, fault: &Fault) -> (StatusCode, &'static str, &'static str) {
    const DDB_THROUGHPUT: &str = "The level of configured provisioned throughput for the table \
         was exceeded. Consider increasing your provisioning level with the UpdateTable API.";
    const RATE: &str = "Rate exceeded";
    match (service, fault) {
        (Service::S3, Fault::Throttle | Fault::ThrottlingException) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        (Service::S3, Fault::InternalError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (Service::S3, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service is unable to handle request.",
        ),
        (Service::DynamoDb, Fault::Throttle) => (
            StatusCode::BAD_REQUEST,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            DDB_THROUGHPUT,
        ),
        (Service::DynamoDbStreams, Fault::Throttle)
        | (Service::DynamoDb | Service::DynamoDbStreams, Fault::ThrottlingException) => (
            StatusCode::BAD_REQUEST,
            "com.amazon.coral.availability#ThrottlingException",
            RATE,
        ),
        (Service::DynamoDb | Service::DynamoDbStreams, Fault::InternalError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "Internal server error",
        ),
        (Service::DynamoDb | Service::DynamoDbStreams, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
            "Service unavailable",
        ),
        (Service::EventBridge, Fault::Throttle | Fault::ThrottlingException) => {
            (StatusCode::BAD_REQUEST, "ThrottlingException", RATE)
        }
        (Service::EventBridge, Fault::InternalError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalException",
            "Internal failure",
        ),
        (Service::EventBridge, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service unavailable",
        ),
        (Service::Sqs, Fault::Throttle | Fault::ThrottlingException) => (
            StatusCode::BAD_REQUEST,
            "com.amazonaws.sqs#RequestThrottled",
            RATE,
        ),
        (Service::Sqs, Fault::InternalError) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "com.amazonaws.sqs#InternalError",
            "Internal failure",
        ),
        (Service::Sqs, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "com.amazonaws.sqs#ServiceUnavailable",
            "Service unavailable",
        ),
    }
}

/// CRC-32 (IEEE), as DynamoDB puts in `x-amz-crc32`.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_reference_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn dynamodb_throttle_is_provisioned_throughput_exceeded() {
        let r = error_response(
            &Operation::new(Service::DynamoDb, "PutItem"),
            &Fault::Throttle,
            "R1",
            false,
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(r.headers().contains_key("x-amz-crc32"));
    }
}
