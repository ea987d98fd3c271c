//! NATS core and JetStream through `async-nats`.

use futures::StreamExt;

use super::{Delivery, JetStreamOptions, Receipt};
use crate::error::Error;

type Deliveries = futures::stream::BoxStream<'static, Result<Delivery, String>>;

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("NATS: {what}: {e}"))
}

async fn connect(url: &str) -> Result<async_nats::Client, Error> {
    async_nats::ConnectOptions::new()
        .name("overture")
        .connection_timeout(std::time::Duration::from_secs(5))
        .retry_on_initial_connect()
        .connect(url)
        .await
        .map_err(|e| unavailable(&format!("connecting to {url}"), e))
}

/// A connection to NATS core.
#[derive(Debug)]
pub(super) struct Nats {
    client: async_nats::Client,
}

impl Nats {
    pub(super) async fn connect(url: &str) -> Result<Nats, Error> {
        Ok(Nats { client: connect(url).await? })
    }

    /// Publishes, with the message id as `Nats-Msg-Id`; done once the server has it.
    pub(super) async fn publish(&self, subject: &str, message_id: &str, payload: Vec<u8>) -> Result<Receipt, Error> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id);
        self.client
            .publish_with_headers(subject.to_owned(), headers, payload.into())
            .await
            .map_err(|e| unavailable(&format!("publishing to {subject}"), e))?;
        // A publish is buffered; a flush answers once the server has it, or fails.
        self.client.flush().await.map_err(|e| unavailable("flushing", e))?;
        Ok(Receipt::default())
    }

    /// Subscribes (in `group`, if given). NATS core has no message id: the publisher's
    /// `Nats-Msg-Id`, or a new one; and no acknowledgement.
    pub(super) async fn subscribe(&self, subject: &str, group: Option<&str>) -> Result<Deliveries, Error> {
        let subscriber = match group {
            Some(g) => self.client.queue_subscribe(subject.to_owned(), g.to_owned()).await,
            None => self.client.subscribe(subject.to_owned()).await,
        }
        .map_err(|e| unavailable(&format!("subscribing to {subject}"), e))?;
        Ok(subscriber
            .map(|m| {
                let message_id = m
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Nats-Msg-Id"))
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                Ok(Delivery {
                    message_id,
                    payload: super::Body::Raw(m.payload.to_vec()),
                    ack: Box::new(|| Box::pin(async { Ok(()) })),
                })
            })
            .boxed())
    }
}

/// A connection to JetStream.
#[derive(Debug)]
pub(super) struct JetStream {
    context: async_nats::jetstream::Context,
    options: JetStreamOptions,
}

impl JetStream {
    pub(super) async fn connect(options: JetStreamOptions) -> Result<JetStream, Error> {
        let client = connect(&options.url).await?;
        Ok(JetStream { context: async_nats::jetstream::new(client), options })
    }

    /// The subject a `jsm:` queue name stands for.
    fn subject(&self, name: &str) -> String {
        format!("{}{name}", self.options.subject_prefix)
    }

    /// The stream that keeps a subject's messages, named as conductor-oss names it (`.` → `_`,
    /// `*` → `ANY`, `>` → `ALL`, upper case), created if missing.
    async fn stream(&self, subject: &str) -> Result<async_nats::jetstream::stream::Stream, Error> {
        let config = async_nats::jetstream::stream::Config {
            name: stream_name(subject),
            subjects: vec![subject.to_owned()],
            num_replicas: self.options.replicas,
            ..Default::default()
        };
        self.context.get_or_create_stream(config).await.map_err(|e| unavailable(&format!("stream for {subject}"), e))
    }

    /// Publishes and waits for JetStream's acknowledgement. The message id is `Nats-Msg-Id`, so
    /// a publish repeated within the stream's duplicate window is stored once.
    pub(super) async fn publish(&self, name: &str, message_id: &str, payload: Vec<u8>) -> Result<Receipt, Error> {
        let subject = self.subject(name);
        self.stream(&subject).await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", message_id);
        let ack = self
            .context
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
            .map_err(|e| unavailable(&format!("publishing to {subject}"), e))?
            .await
            .map_err(|e| unavailable(&format!("the acknowledgement of a publish to {subject}"), e))?;
        let mut receipt = Receipt::default();
        receipt.fields.insert("subject".into(), subject.into());
        receipt.fields.insert("stream".into(), ack.stream.into());
        receipt.fields.insert("sequence".into(), ack.sequence.into());
        Ok(receipt)
    }

    /// Messages of a `jsm:` queue its durable consumer has not had acknowledged: not delivered
    /// yet, or delivered and not acknowledged.
    pub(super) async fn backlog(&self, name: &str) -> Result<i64, Error> {
        let subject = self.subject(name);
        let stream = self.stream(&subject).await?;
        let durable = &self.options.durable_name;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(durable).await.map_err(|e| unavailable(&format!("consumer {durable}"), e))?;
        let info = consumer.info().await.map_err(|e| unavailable(&format!("consumer {durable}"), e))?;
        Ok(i64::try_from(info.num_pending).unwrap_or(i64::MAX).saturating_add(info.num_ack_pending as i64))
    }

    /// The durable pull consumer of a `jsm:` queue, from new messages on. A message's id is its
    /// stream and sequence, the same on every redelivery.
    pub(super) async fn consume(&self, name: &str) -> Result<Deliveries, Error> {
        let subject = self.subject(name);
        let stream = self.stream(&subject).await?;
        let durable = self.options.durable_name.clone();
        let config = async_nats::jetstream::consumer::pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: subject.clone(),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
            ack_wait: self.options.ack_wait,
            max_deliver: self.options.max_deliver,
            max_ack_pending: self.options.max_ack_pending,
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|e| unavailable(&format!("consumer {durable} of {subject}"), e))?;
        let messages = consumer.messages().await.map_err(|e| unavailable(&format!("consuming {subject}"), e))?;
        let stream_name = stream_name(&subject);
        Ok(messages
            .map(move |m| {
                let m = m.map_err(|e| e.to_string())?;
                let sequence = m.info().map(|i| i.stream_sequence).map_err(|e| e.to_string())?;
                let message_id = format!("{stream_name}:{sequence}");
                let payload = m.payload.to_vec();
                let ack: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, Result<(), String>> + Send> =
                    Box::new(move || Box::pin(async move { m.ack().await.map_err(|e| e.to_string()) }));
                Ok(Delivery { message_id, payload: super::Body::Raw(payload), ack })
            })
            .boxed())
    }
}

/// conductor-oss's stream name for a subject.
fn stream_name(subject: &str) -> String {
    subject.replace('.', "_").replace('*', "ANY").replace('>', "ALL").to_uppercase()
}

#[cfg(test)]
mod tests {
    #[test]
    fn streams_are_named_as_conductor_oss_names_them() {
        assert_eq!(super::stream_name("conductor_jsm_notify_test_orders.new"), "CONDUCTOR_JSM_NOTIFY_TEST_ORDERS_NEW");
        assert_eq!(super::stream_name("a.*.>"), "A_ANY_ALL");
    }
}
