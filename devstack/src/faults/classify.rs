//! Which operation a request is, from what is on the wire.
//!
//! JSON-protocol services name it in `X-Amz-Target` (`DynamoDB_20120810.BatchWriteItem`,
//! `DynamoDBStreams_20120810.GetRecords`, `AWSEvents.PutEvents`, `AmazonSQS.SendMessage`).
//! S3 names it with method + path + query (path-style addressing, which the local stack
//! requires); the Rust SDK also adds `x-id=<Operation>` to many S3 requests, which wins when
//! present. SQS's older query protocol names it in an `Action=` form field.

use hyper::{HeaderMap, Method, Uri};

use super::plan::{Operation, Service};

/// Classifies one request received by a proxy whose upstream mainly serves `default`.
pub(crate) fn classify(
    default: Service,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Operation {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, name) = target.rsplit_once('.').unwrap_or(("", target));
        let service = if prefix.starts_with("DynamoDBStreams") {
            Service::DynamoDbStreams
        } else if prefix.starts_with("DynamoDB") {
            Service::DynamoDb
        } else if prefix == "AWSEvents" {
            Service::EventBridge
        } else if prefix == "AmazonSQS" {
            Service::Sqs
        } else {
            default
        };
        return Operation::new(service, name);
    }
    if default == Service::S3 {
        return Operation::new(Service::S3, s3_operation(method, uri, headers));
    }
    if let Some(action) = query_action(uri.query().unwrap_or_default())
        .or_else(|| query_action(std::str::from_utf8(body).unwrap_or_default()))
    {
        return Operation::new(Service::Sqs, action);
    }
    Operation::new(default, "Unknown")
}

fn query_action(form: &str) -> Option<String> {
    form.split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_string)
}

fn s3_operation(method: &Method, uri: &Uri, headers: &HeaderMap) -> String {
    let params: Vec<(&str, &str)> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .collect();
    if let Some((_, id)) = params.iter().find(|(k, _)| *k == "x-id")
        && !id.is_empty()
    {
        return (*id).to_string();
    }
    let has = |k: &str| params.iter().any(|(p, _)| *p == k);
    // The first query parameter that is a subresource rather than a listing option.
    let subresource = params
        .iter()
        .map(|(k, _)| *k)
        .find(|k| {
            !matches!(
                *k,
                "list-type"
                    | "prefix"
                    | "delimiter"
                    | "max-keys"
                    | "continuation-token"
                    | "start-after"
                    | "fetch-owner"
                    | "encoding-type"
                    | "marker"
                    | "versionId"
                    | "partNumber"
                    | "uploadId"
                    | "max-parts"
                    | "part-number-marker"
            ) && !k.starts_with("response-")
                && !k.starts_with("X-Amz-")
        })
        .map(capitalize);
    let copy = headers.contains_key("x-amz-copy-source");
    let path = uri.path().trim_start_matches('/');
    let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
    let m = method.as_str();
    if bucket.is_empty() {
        return if m == "GET" { "ListBuckets" } else { "Unknown" }.to_string();
    }
    if key.is_empty() {
        match (m, subresource.as_deref()) {
            ("PUT", None) => "CreateBucket".to_string(),
            ("PUT", Some(s)) => format!("PutBucket{s}"),
            ("DELETE", None) => "DeleteBucket".to_string(),
            ("DELETE", Some(s)) => format!("DeleteBucket{s}"),
            ("HEAD", _) => "HeadBucket".to_string(),
            ("POST", Some("Delete")) => "DeleteObjects".to_string(),
            ("GET", Some("Uploads")) => "ListMultipartUploads".to_string(),
            ("GET", Some("Versions")) => "ListObjectVersions".to_string(),
            ("GET", Some(s)) => format!("GetBucket{s}"),
            ("GET", None) if has("list-type") => "ListObjectsV2".to_string(),
            ("GET", None) => "ListObjects".to_string(),
            _ => "Unknown".to_string(),
        }
    } else {
        match (m, subresource.as_deref()) {
            ("PUT", None) if has("partNumber") && has("uploadId") => {
                if copy { "UploadPartCopy" } else { "UploadPart" }.to_string()
            }
            ("PUT", None) if copy => "CopyObject".to_string(),
            ("PUT", None) => "PutObject".to_string(),
            ("PUT", Some(s)) => format!("PutObject{s}"),
            ("POST", Some("Uploads")) => "CreateMultipartUpload".to_string(),
            ("POST", None) if has("uploadId") => "CompleteMultipartUpload".to_string(),
            ("DELETE", None) if has("uploadId") => "AbortMultipartUpload".to_string(),
            ("DELETE", None) => "DeleteObject".to_string(),
            ("DELETE", Some(s)) => format!("DeleteObject{s}"),
            ("GET", None) if has("uploadId") => "ListParts".to_string(),
            ("GET", None) => "GetObject".to_string(),
            ("GET", Some(s)) => format!("GetObject{s}"),
            ("HEAD", _) => "HeadObject".to_string(),
            _ => "Unknown".to_string(),
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = true;
    for c in s.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(method: &str, uri: &str) -> String {
        s3_with(method, uri, &[])
    }

    fn s3_with(method: &str, uri: &str, headers: &[(&'static str, &'static str)]) -> String {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        classify(
            Service::S3,
            &method.parse().unwrap(),
            &uri.parse().unwrap(),
            &h,
            b"",
        )
        .name
    }

    #[test]
    fn s3_operations_from_method_path_and_query() {
        assert_eq!(s3("PUT", "/b/k/x.parquet"), "PutObject");
        assert_eq!(s3("PUT", "/b/k?partNumber=2&uploadId=abc"), "UploadPart");
        assert_eq!(
            s3_with(
                "PUT",
                "/b/k?partNumber=2&uploadId=abc",
                &[("x-amz-copy-source", "/b/o")]
            ),
            "UploadPartCopy"
        );
        assert_eq!(s3("POST", "/b/k?uploads"), "CreateMultipartUpload");
        assert_eq!(s3("POST", "/b/k?uploads="), "CreateMultipartUpload");
        assert_eq!(s3("POST", "/b/k?uploadId=abc"), "CompleteMultipartUpload");
        assert_eq!(s3("DELETE", "/b/k?uploadId=abc"), "AbortMultipartUpload");
        assert_eq!(s3("GET", "/b/k"), "GetObject");
        assert_eq!(s3("GET", "/b/k?uploadId=abc"), "ListParts");
        assert_eq!(s3("HEAD", "/b/k"), "HeadObject");
        assert_eq!(s3("GET", "/b?list-type=2&prefix=cdc%2F"), "ListObjectsV2");
        assert_eq!(s3("GET", "/b/?list-type=2"), "ListObjectsV2");
        assert_eq!(s3("DELETE", "/b/k"), "DeleteObject");
        assert_eq!(s3("POST", "/b?delete"), "DeleteObjects");
        assert_eq!(s3("PUT", "/b"), "CreateBucket");
        assert_eq!(s3("GET", "/"), "ListBuckets");
        assert_eq!(s3("GET", "/b?location"), "GetBucketLocation");
        assert_eq!(s3("PUT", "/b/k?x-id=PutObject"), "PutObject");
        assert_eq!(s3("GET", "/b/k?tagging"), "GetObjectTagging");
    }

    #[test]
    fn json_services_from_target() {
        let mut h = HeaderMap::new();
        let get = |h: &HeaderMap| {
            classify(
                Service::DynamoDb,
                &Method::POST,
                &"/".parse().unwrap(),
                h,
                b"{}",
            )
        };
        h.insert(
            "x-amz-target",
            "DynamoDB_20120810.BatchWriteItem".parse().unwrap(),
        );
        assert_eq!(get(&h), Operation::new(Service::DynamoDb, "BatchWriteItem"));
        h.insert(
            "x-amz-target",
            "DynamoDBStreams_20120810.GetRecords".parse().unwrap(),
        );
        assert_eq!(
            get(&h),
            Operation::new(Service::DynamoDbStreams, "GetRecords")
        );
        h.insert("x-amz-target", "AWSEvents.PutEvents".parse().unwrap());
        assert_eq!(get(&h), Operation::new(Service::EventBridge, "PutEvents"));
        h.insert("x-amz-target", "AmazonSQS.SendMessage".parse().unwrap());
        assert_eq!(get(&h), Operation::new(Service::Sqs, "SendMessage"));
    }

    #[test]
    fn sqs_query_protocol_from_action() {
        let op = classify(
            Service::EventBridge,
            &Method::POST,
            &"/".parse().unwrap(),
            &HeaderMap::new(),
            b"Action=SendMessage&QueueUrl=x",
        );
        assert_eq!(op, Operation::new(Service::Sqs, "SendMessage"));
    }
}
