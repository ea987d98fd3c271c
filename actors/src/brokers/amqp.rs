//! AMQP 0-9-1 (RabbitMQ) through `lapin`: `amqp_queue:name[?params]` and
//! `amqp_exchange:name[?params]`, with conductor-oss's parameters (`exchangeType`,
//! `bindQueueName`, `routingKey`, `durable`, `exclusive`, `autoDelete`, `deliveryMode`).
//! Publishes wait for the broker's confirm; consumed messages are acknowledged after their
//! actions commit (conductor-oss never acknowledges in exchange mode).

use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

use super::{AmqpOptions, Delivery, Receipt};
use crate::error::Error;

type Deliveries = futures::stream::BoxStream<'static, Result<Delivery, String>>;

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("AMQP: {what}: {e}"))
}

/// A queue or exchange as its name and parameters give it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Target {
    exchange: bool,
    name: String,
    exchange_type: String,
    bind_queue: String,
    routing_key: String,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    delivery_mode: u8,
}

impl Target {
    /// Reads `name[?k=v&...]`; keys ignore case, unknown ones are ignored, as in conductor-oss.
    pub(super) fn parse(exchange: bool, spec: &str, options: &AmqpOptions) -> Result<Target, String> {
        let (name, params) = spec.split_once('?').unwrap_or((spec, ""));
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("AMQP queue {spec:?} has no name"));
        }
        let mut t = Target {
            exchange,
            name: name.to_owned(),
            exchange_type: options.exchange_type.clone(),
            bind_queue: format!("bound_to_{name}"),
            routing_key: String::new(),
            durable: options.durable,
            exclusive: false,
            auto_delete: false,
            delivery_mode: options.delivery_mode,
        };
        for pair in params.split('&').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else { continue };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "exchangetype" => t.exchange_type = v.to_owned(),
                "bindqueuename" => t.bind_queue = v.to_owned(),
                "routingkey" => t.routing_key = v.to_owned(),
                "durable" => t.durable = v.eq_ignore_ascii_case("true"),
                "exclusive" => t.exclusive = v.eq_ignore_ascii_case("true"),
                "autodelete" => t.auto_delete = v.eq_ignore_ascii_case("true"),
                "deliverymode" => match v.parse() {
                    Ok(m @ (1 | 2)) => t.delivery_mode = m,
                    _ => return Err("Delivery mode must be 1 or 2".into()),
                },
                _ => {}
            }
        }
        Ok(t)
    }

    fn queue_options(&self) -> QueueDeclareOptions {
        QueueDeclareOptions {
            durable: self.durable,
            exclusive: self.exclusive,
            auto_delete: self.auto_delete,
            ..Default::default()
        }
    }

    async fn declare_exchange(&self, channel: &lapin::Channel) -> Result<(), Error> {
        let kind = match self.exchange_type.as_str() {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "headers" => ExchangeKind::Headers,
            "topic" => ExchangeKind::Topic,
            other => ExchangeKind::Custom(other.to_owned()),
        };
        let options =
            ExchangeDeclareOptions { durable: self.durable, auto_delete: self.auto_delete, ..Default::default() };
        channel
            .exchange_declare(self.name.as_str().into(), kind, options, FieldTable::default())
            .await
            .map_err(|e| unavailable(&format!("declaring exchange {}", self.name), e))
    }

    async fn declare_queue(&self, channel: &lapin::Channel, name: &str) -> Result<(), Error> {
        channel
            .queue_declare(name.into(), self.queue_options(), FieldTable::default())
            .await
            .map(|_| ())
            .map_err(|e| unavailable(&format!("declaring queue {name}"), e))
    }
}

/// A connection to the broker, and a channel in confirm mode to publish on.
#[derive(Debug)]
pub(super) struct Amqp {
    connection: lapin::Connection,
    publisher: lapin::Channel,
    options: AmqpOptions,
}

impl Amqp {
    pub(super) async fn connect(options: AmqpOptions) -> Result<Amqp, Error> {
        let connection = lapin::Connection::connect(&options.url, lapin::ConnectionProperties::default())
            .await
            .map_err(|e| unavailable("connecting", e))?;
        let publisher = connection.create_channel().await.map_err(|e| unavailable("opening a channel", e))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| unavailable("turning publisher confirms on", e))?;
        Ok(Amqp { connection, publisher, options })
    }

    pub(super) fn target(&self, exchange: bool, spec: &str) -> Result<Target, Error> {
        Target::parse(exchange, spec, &self.options).map_err(Error::BadRequest)
    }

    /// Publishes to the queue (through the default exchange) or to the exchange with the routing
    /// key, as persistent JSON with the message id, and waits for the broker's confirm.
    pub(super) async fn publish(&self, t: &Target, message_id: &str, payload: Vec<u8>) -> Result<Receipt, Error> {
        let (exchange, routing_key) = if t.exchange {
            t.declare_exchange(&self.publisher).await?;
            (t.name.as_str(), t.routing_key.as_str())
        } else {
            t.declare_queue(&self.publisher, &t.name).await?;
            ("", t.name.as_str())
        };
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_content_encoding("UTF-8".into())
            .with_delivery_mode(t.delivery_mode);
        let confirm = self
            .publisher
            .basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), &payload, properties)
            .await
            .map_err(|e| unavailable(&format!("publishing to {}", t.name), e))?
            .await
            .map_err(|e| unavailable(&format!("the confirm of a publish to {}", t.name), e))?;
        if !confirm.is_ack() {
            return Err(Error::Unavailable(format!("AMQP: the broker refused a publish to {} (nack)", t.name)));
        }
        let mut receipt = Receipt::default();
        receipt.fields.insert("messageId".into(), message_id.into());
        Ok(receipt)
    }

    /// Messages ready on the queue (an exchange's: its bound queue) and not yet delivered to a
    /// consumer, as RabbitMQ counts them; asked on a channel of its own, closed after.
    pub(super) async fn backlog(&self, t: &Target) -> Result<i64, Error> {
        let channel = self.connection.create_channel().await.map_err(|e| unavailable("opening a channel", e))?;
        let queue = if t.exchange { &t.bind_queue } else { &t.name };
        let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await;
        let _ = channel.close(200, "done".into()).await;
        let declared = declared.map_err(|e| unavailable(&format!("counting the messages of {queue}"), e))?;
        Ok(i64::from(declared.message_count()))
    }

    /// Consumes the queue (or the exchange through its bound queue), `prefetch` messages at a
    /// time on a channel of its own. A message's id is its `message-id` property, the same on
    /// every redelivery; without one, a new id (its effects then happen again if redelivered).
    pub(super) async fn consume(&self, t: &Target) -> Result<Deliveries, Error> {
        let channel = self.connection.create_channel().await.map_err(|e| unavailable("opening a channel", e))?;
        channel
            .basic_qos(self.options.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| unavailable("setting the prefetch", e))?;
        let queue = if t.exchange {
            t.declare_exchange(&channel).await?;
            t.declare_queue(&channel, &t.bind_queue).await?;
            channel
                .queue_bind(
                    t.bind_queue.as_str().into(),
                    t.name.as_str().into(),
                    t.routing_key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| unavailable(&format!("binding {} to {}", t.bind_queue, t.name), e))?;
            t.bind_queue.clone()
        } else {
            t.declare_queue(&channel, &t.name).await?;
            t.name.clone()
        };
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "overture".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| unavailable(&format!("consuming {queue}"), e))?;
        Ok(consumer
            .map(|d| {
                let d = d.map_err(|e| e.to_string())?;
                let message_id = d
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string())
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let payload = d.data.clone();
                let ack: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, Result<(), String>> + Send> =
                    Box::new(move || {
                        Box::pin(async move {
                            d.acker
                                .ack(lapin::options::BasicAckOptions::default())
                                .await
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        })
                    });
                Ok(Delivery { message_id, payload: super::Body::Raw(payload), ack })
            })
            .boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parameters_read_as_conductor_oss_reads_them() {
        let o = AmqpOptions::default();
        let t =
            Target::parse(true, "orders?exchangeType=fanout&ROUTINGKEY=a.b&durable=false&junk", &o).expect("parses");
        assert_eq!((t.name.as_str(), t.exchange_type.as_str(), t.routing_key.as_str()), ("orders", "fanout", "a.b"));
        assert_eq!(t.bind_queue, "bound_to_orders");
        assert!(!t.durable);
        let q = Target::parse(false, "订单", &o).expect("parses");
        assert_eq!((q.name.as_str(), q.durable, q.delivery_mode), ("订单", true, 2));
        assert!(Target::parse(false, "q?deliveryMode=3", &o).is_err());
        assert!(Target::parse(false, "?x=1", &o).is_err());
    }
}
