//! Amazon SQS, or a server that speaks its API (`sqs:queue`), through its JSON protocol with
//! requests signed by AWS Signature Version 4.
//!
//! A queue is found by name (`GetQueueUrl`) and created if missing. Consuming long-polls
//! (`ReceiveMessage`, up to `wait_seconds`) and deletes a message only once its actions are
//! committed; one not deleted comes back after the visibility timeout with the same
//! `MessageId`, which the effects are keyed by. Publishing waits for SQS's `MessageId`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Delivery, Receipt, SqsOptions};
use crate::error::Error;
use crate::sigv4::Signer;

type Deliveries = futures::stream::BoxStream<'static, Result<Delivery, String>>;

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("SQS: {what}: {e}"))
}

/// A client of one SQS endpoint, with the queue URLs it has looked up.
#[derive(Debug)]
pub(crate) struct Sqs {
    http: reqwest::Client,
    options: SqsOptions,
    urls: Mutex<HashMap<String, String>>,
}

impl Sqs {
    pub(crate) fn new(options: SqsOptions) -> Sqs {
        // The project's HTTP client, which has the TLS provider installed (https:// to AWS).
        let http = overture_raft::http::client()
            .timeout(Duration::from_secs(options.wait_seconds + 10))
            .build()
            .unwrap_or_default();
        Sqs { http, options, urls: Mutex::default() }
    }

    /// Calls `action` with `body`; answers its JSON, or the error SQS gave.
    async fn call(&self, action: &str, body: &Value) -> Result<Value, Error> {
        let endpoint = self.options.endpoint.trim_end_matches('/');
        let host = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let target = format!("AmazonSQS.{action}");
        let content_type = "application/x-amz-json-1.0";
        let signer = Signer {
            access_key: &self.options.access_key,
            secret_key: &self.options.secret_key,
            region: &self.options.region,
            service: "sqs",
        };
        let headers = [("content-type", content_type), ("host", host), ("x-amz-target", target.as_str())];
        let signed = signer.sign_request("POST", "/", "", &headers, &payload, SystemTime::now());
        let mut request = self
            .http
            .post(format!("{endpoint}/"))
            .header("content-type", content_type)
            .header("x-amz-target", &target)
            .body(payload);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| unavailable(action, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| unavailable(action, e))?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let kind = answer["__type"].as_str().unwrap_or_default().rsplit('#').next().unwrap_or_default().to_owned();
        let message = answer["message"].as_str().or(answer["Message"].as_str()).unwrap_or(&text);
        let why = format!("{status} {kind}: {}", message.chars().take(300).collect::<String>());
        if status.is_server_error() || status.as_u16() == 429 {
            Err(unavailable(action, why))
        } else {
            Err(Error::BadRequest(format!("SQS: {action}: {why}")))
        }
    }

    /// The URL of the queue called `name`, creating the queue if there is none.
    async fn url(&self, name: &str) -> Result<String, Error> {
        if let Some(url) = self.urls.lock().get(name) {
            return Ok(url.clone());
        }
        let url = match self.call("GetQueueUrl", &json!({"QueueName": name})).await {
            Ok(answer) => answer["QueueUrl"].as_str().unwrap_or_default().to_owned(),
            Err(Error::BadRequest(why)) if why.contains("QueueDoesNotExist") || why.contains("NonExistentQueue") => {
                let created = self.call("CreateQueue", &json!({"QueueName": name})).await?;
                tracing::info!(queue = name, "created an SQS queue");
                created["QueueUrl"].as_str().unwrap_or_default().to_owned()
            }
            Err(e) => return Err(e),
        };
        if url.is_empty() {
            return Err(unavailable("GetQueueUrl", format!("no URL for queue {name}")));
        }
        self.urls.lock().insert(name.to_owned(), url.clone());
        Ok(url)
    }

    /// Sends one message; done when SQS has given it an id.
    pub(crate) async fn publish(&self, name: &str, payload: Vec<u8>) -> Result<Receipt, Error> {
        let url = self.url(name).await?;
        let body = String::from_utf8_lossy(&payload).into_owned();
        let sent = self.call("SendMessage", &json!({"QueueUrl": url, "MessageBody": body})).await?;
        let mut fields = serde_json::Map::new();
        fields.insert("queueUrl".into(), Value::String(url));
        fields.insert("messageId".into(), sent["MessageId"].clone());
        Ok(Receipt { fields })
    }

    /// Consumes the queue called `name`: each message is deleted by its acknowledgement.
    /// Messages waiting or being handled, as SQS approximates them.
    pub(crate) async fn backlog(&self, name: &str) -> Result<i64, Error> {
        let url = self.url(name).await?;
        let names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"];
        let got = self.call("GetQueueAttributes", &json!({"QueueUrl": url, "AttributeNames": names})).await?;
        // SQS gives numbers as strings.
        Ok(names.iter().filter_map(|n| got["Attributes"][n].as_str()?.parse::<i64>().ok()).sum())
    }

    pub(crate) async fn consume(self: &std::sync::Arc<Self>, name: &str) -> Result<Deliveries, Error> {
        let url = self.url(name).await?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(receive(self.clone(), url, tx));
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|d| (d, rx)) })))
    }
}

/// Long-polls the queue into `tx` until the consumer is gone or SQS fails (the consumer then
/// opens the queue again).
async fn receive(sqs: std::sync::Arc<Sqs>, url: String, tx: mpsc::Sender<Result<Delivery, String>>) {
    let o = &sqs.options;
    let request = json!({"QueueUrl": url, "MaxNumberOfMessages": o.batch_size, "WaitTimeSeconds": o.wait_seconds,
        "VisibilityTimeout": o.visibility_timeout.as_secs()});
    while !tx.is_closed() {
        let answer = match sqs.call("ReceiveMessage", &request).await {
            Ok(a) => a,
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
        };
        for m in answer["Messages"].as_array().cloned().unwrap_or_default() {
            let receipt = m["ReceiptHandle"].as_str().unwrap_or_default().to_owned();
            let (sqs, url) = (sqs.clone(), url.clone());
            let delivery = Delivery {
                message_id: m["MessageId"].as_str().unwrap_or_default().to_owned(),
                payload: super::Body::Raw(m["Body"].as_str().unwrap_or_default().as_bytes().to_vec()),
                ack: Box::new(move || {
                    Box::pin(async move {
                        let delete = json!({"QueueUrl": url, "ReceiptHandle": receipt});
                        sqs.call("DeleteMessage", &delete).await.map(|_| ()).map_err(|e| e.to_string())
                    })
                }),
            };
            if tx.send(Ok(delivery)).await.is_err() {
                return;
            }
        }
    }
}
