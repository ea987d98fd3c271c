//! The registry of the leader's live workflow actors: activates an actor on a workflow's first
//! message, delivers messages through its inbox, and passivates actors that are idle, finished or
//! beyond the live limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;

use super::{ActorArgs, Inbox, MAX_INBOX, Reply, WorkflowActor, WorkflowMsg};
use crate::error::Error;
use crate::host::Host;
use crate::names;

/// Live workflow actors at most, by default. A live actor costs about 20 KB (its task, mailboxes
/// and its copy of the state), so 100,000 waiting workflows must not all keep one.
pub const DEFAULT_MAX_LIVE: usize = 1_000;

/// The leader's live workflow actors.
pub(crate) struct Registry {
    /// What the actors share for this term.
    pub host: Arc<Host>,
    actors: Mutex<HashMap<String, Slot>>,
    /// Beyond this many, the least recently active actors are passivated.
    max_live: usize,
}

#[derive(Clone)]
struct Slot {
    actor: ActorRef<WorkflowMsg>,
    last_active: Arc<AtomicI64>,
    inbox: Arc<Inbox>,
}

impl Registry {
    pub fn new(host: Arc<Host>, max_live: usize) -> Arc<Registry> {
        Arc::new(Registry { host, actors: Mutex::default(), max_live: max_live.max(1) })
    }

    /// Actors live now.
    pub fn len(&self) -> usize {
        self.actors.lock().len()
    }

    async fn slot(self: &Arc<Self>, id: &str) -> Result<Slot, Error> {
        if let Some(slot) = self.actors.lock().get(id) {
            return Ok(slot.clone());
        }
        let last_active = Arc::new(AtomicI64::new(crate::now_ms()));
        let inbox = Arc::new(Inbox::default());
        let args = ActorArgs {
            workflow_id: id.into(),
            registry: self.clone(),
            last_active: last_active.clone(),
            inbox: inbox.clone(),
        };
        let (actor, _join) = Actor::spawn(None, WorkflowActor, args)
            .await
            .map_err(|e| Error::Internal(format!("cannot start a workflow actor: {e}")))?;
        let mut actors = self.actors.lock();
        if let Some(existing) = actors.get(id) {
            // Someone else activated it meanwhile; use theirs.
            actor.stop(None);
            return Ok(existing.clone());
        }
        let slot = Slot { actor, last_active, inbox };
        actors.insert(id.to_owned(), slot.clone());
        if actors.len() > self.max_live {
            let stopped = Self::passivate_least_recent(&mut actors, id, self.max_live);
            metrics::counter!(names::ACTORS_EVICTED).increment(stopped as u64);
        }
        metrics::gauge!(names::ACTORS_ACTIVE).set(actors.len() as f64);
        Ok(slot)
    }

    /// Sends a message to a workflow's actor (activating it) and waits for the reply. A message
    /// lost to an actor that stopped is retried on a fresh one: nothing was committed for it.
    pub async fn send<T, P: Clone>(
        self: &Arc<Self>,
        id: &str,
        payload: P,
        wrap: impl Fn(P, Reply<T>) -> WorkflowMsg,
        timeout: Duration,
    ) -> Result<T, Error> {
        for _ in 0..3 {
            let slot = self.slot(id).await?;
            let (tx, rx) = oneshot::channel();
            // Queued in the inbox; the actor is woken only if it was idle. If the actor has
            // stopped, the inbox (and the reply sender in it) is dropped with it, and the closed
            // channel sends us round again.
            match slot.inbox.push(wrap(payload.clone(), tx)) {
                Err(_refused) => {
                    metrics::counter!(names::INBOX_FULL).increment(1);
                    return Err(Error::Overloaded(format!(
                        "workflow {id} has {MAX_INBOX} requests waiting; retry shortly"
                    )));
                }
                Ok(true) if slot.actor.cast(WorkflowMsg::Drain).is_err() => {
                    self.forget(id, &slot.actor);
                    drop(slot.inbox.take());
                    continue;
                }
                Ok(_) => {}
            }
            let actor = slot.actor.clone();
            drop(slot);
            // A leader that loses its lease answers nothing more: whatever it was committing may
            // never commit, and another node may be leading. The caller retries there.
            let mut lease = self.host.lease_watch();
            let answer = tokio::select! {
                answer = tokio::time::timeout(timeout, rx) => answer,
                _ = lease.wait_for(|held| !*held) => {
                    return Err(Error::Unavailable(crate::error::LEASE_LOST.into()));
                }
            };
            match answer {
                Ok(Ok(result)) => return result,
                Ok(Err(_closed)) => self.forget(id, &actor),
                Err(_) => return Err(Error::Unavailable(format!("workflow {id} did not answer within {timeout:?}"))),
            }
        }
        Err(Error::Unavailable(format!("workflow {id} is being moved; retry")))
    }

    fn forget(&self, id: &str, actor: &ActorRef<WorkflowMsg>) {
        let mut actors = self.actors.lock();
        if actors.get(id).is_some_and(|s| s.actor.get_id() == actor.get_id()) {
            actors.remove(id);
        }
    }

    /// Stops an actor whose workflow is finished.
    pub fn passivate(&self, id: &str, actor: &ActorRef<WorkflowMsg>) {
        self.forget(id, actor);
        actor.stop(None);
        metrics::gauge!(names::ACTORS_ACTIVE).set(self.actors.lock().len() as f64);
    }

    /// Stops the actor of a workflow, if it has one (before the workflow is removed).
    pub fn stop(&self, id: &str) {
        if let Some(slot) = self.actors.lock().remove(id) {
            slot.actor.stop(None);
        }
        metrics::gauge!(names::ACTORS_ACTIVE).set(self.actors.lock().len() as f64);
    }

    /// Stops actors idle for longer than `idle`.
    pub fn passivate_idle(&self, idle: Duration) -> usize {
        let cutoff = crate::now_ms() - idle.as_millis() as i64;
        let mut actors = self.actors.lock();
        let idle_ids: Vec<String> = actors
            .iter()
            .filter(|(_, s)| s.last_active.load(Ordering::Relaxed) < cutoff)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle_ids {
            if let Some(slot) = actors.remove(id) {
                slot.actor.stop(None);
            }
        }
        metrics::gauge!(names::ACTORS_ACTIVE).set(actors.len() as f64);
        idle_ids.len()
    }

    /// Over the limit: stops the least recently active tenth of the actors (not `keep`, just
    /// activated), so the next evictions are that many activations away. An actor stopped in the
    /// middle of a message finishes it; a message for it afterwards activates a fresh one.
    fn passivate_least_recent(actors: &mut HashMap<String, Slot>, keep: &str, max_live: usize) -> usize {
        let count = (max_live / 10).max(1).min(actors.len() - 1);
        let mut ages: Vec<(i64, &String)> = actors
            .iter()
            .filter(|(id, _)| id.as_str() != keep)
            .map(|(id, s)| (s.last_active.load(Ordering::Relaxed), id))
            .collect();
        if count < ages.len() {
            ages.select_nth_unstable(count);
            ages.truncate(count);
        }
        let evict: Vec<String> = ages.into_iter().map(|(_, id)| id.clone()).collect();
        for id in &evict {
            if let Some(slot) = actors.remove(id) {
                slot.actor.stop(None);
            }
        }
        evict.len()
    }

    /// Stops every actor (leadership ended).
    pub fn stop_all(&self) {
        let mut actors = self.actors.lock();
        for (_, slot) in actors.drain() {
            slot.actor.stop(None);
        }
        metrics::gauge!(names::ACTORS_ACTIVE).set(0.0);
    }
}
