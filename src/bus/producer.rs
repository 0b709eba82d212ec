//! Publishing: an idempotent producer with `acks=all` that retries until delivered.

use super::context::BusContext;
use super::{Bus, BusError, Topics};
use crate::messages::{
    CpCommand, CpEvent, DeadLetter, DriverRequest, DriverUpdate, Envelope, Keyed,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Serialize;

/// Sends typed messages to their topic, keyed by the entity they concern. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer<BusContext>,
    /// Shared: a publisher is cloned for every message an actor sends in the background.
    topics: std::sync::Arc<Topics>,
    context: BusContext,
    keys: Option<std::sync::Arc<dyn crate::proof::Keyring>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Bus {
    pub fn publisher(&self) -> Result<Publisher, BusError> {
        let producer = self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // 0 = never give up: an acknowledged message is never dropped while the broker is away.
            .set("message.timeout.ms", "0")
            .set("linger.ms", self.settings.linger.as_millis().to_string())
            .create_with_context(self.context.clone())?;
        Ok(Publisher {
            producer,
            topics: std::sync::Arc::new(self.topics.clone()),
            context: self.context.clone(),
            keys: self.keys.clone(),
        })
    }
}

impl Publisher {
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Central → driver.
    pub async fn driver_update(&self, update: DriverUpdate) -> Result<(), BusError> {
        self.publish(
            &self.topics.driver_updates,
            update.key(),
            &Envelope::new(&update),
        )
        .await
    }

    /// Driver → central.
    pub async fn driver_request(&self, request: DriverRequest) -> Result<(), BusError> {
        self.publish(
            &self.topics.driver_requests,
            request.key(),
            &Envelope::new(&request),
        )
        .await
    }

    /// Central → engine.
    pub async fn cp_command(&self, command: CpCommand) -> Result<(), BusError> {
        self.publish(
            &self.topics.cp_commands,
            command.key(),
            &Envelope::new(&command),
        )
        .await
    }

    /// Engine → central.
    pub async fn cp_event(&self, event: CpEvent) -> Result<(), BusError> {
        self.publish(&self.topics.cp_events, event.key(), &Envelope::new(&event))
            .await
    }

    /// Gateway → ledger: records an OCPP transaction's start on partition 0 of its topic
    /// and answers with its id there (its offset, from 1), unique across every gateway.
    pub async fn ocpp_transaction(
        &self,
        started: crate::messages::gateway::TransactionStarted,
    ) -> Result<i64, BusError> {
        let payload = serde_json::to_vec(&Envelope::new(&started))?;
        let proven = super::proofs::ProvenTopic::ledger();
        let proof = super::proofs::prove(self.keys.as_ref(), proven, &started.cp_id, &payload)
            .map_err(BusError::Unproven)?;
        let record = FutureRecord::to(&self.topics.ocpp_transactions)
            .key(&started.cp_id)
            .partition(0)
            .payload(&payload)
            .headers(OwnedHeaders::new().insert(Header {
                key: crate::proof::HEADER,
                value: Some(proof.as_bytes()),
            }));
        match self.producer.send(record, Timeout::Never).await {
            Ok(delivery) => {
                self.context.note_success();
                Ok(delivery.offset + 1)
            }
            Err((error, _)) => Err(error.into()),
        }
    }

    pub(super) async fn dead_letter(&self, letter: DeadLetter) -> Result<(), BusError> {
        let key = letter.key.clone().unwrap_or_default();
        self.publish(&self.topics.dead_letter, &key, &Envelope::new(&letter))
            .await
    }

    /// Sends in the background; a failure is logged. For callers inside actor handlers that
    /// must not wait for the broker.
    pub fn spawn<F>(&self, send: F)
    where
        F: std::future::Future<Output = Result<(), BusError>> + 'static,
    {
        actix::spawn(async move {
            if let Err(e) = send.await {
                log::error!("a message could not be sent: {e}");
            }
        });
    }

    async fn publish<T: Serialize>(
        &self,
        topic: &str,
        key: &str,
        envelope: &Envelope<T>,
    ) -> Result<(), BusError> {
        let payload = serde_json::to_vec(envelope)?;
        let mut record = FutureRecord::to(topic).key(key).payload(&payload);
        if let Some(proven) = self.topics.proven(topic) {
            let proof = super::proofs::prove(self.keys.as_ref(), proven, key, &payload)
                .map_err(BusError::Unproven)?;
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: crate::proof::HEADER,
                value: Some(proof.as_bytes()),
            }));
        }
        match self.producer.send(record, Timeout::Never).await {
            Ok(_) => {
                self.context.note_success();
                Ok(())
            }
            Err((error, _)) => Err(error.into()),
        }
    }
}
