//! Conductor's idempotent starts: a start with an `idempotencyKey` already used by a workflow of
//! the same name does what its `idempotencyStrategy` says. The rule is here; the state machine
//! applies it in log order, so two concurrent starts with one key make one workflow.

use crate::ids::WorkflowId;

/// What a start does when its idempotency key was used before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `FAIL` (the default): the start is refused.
    Fail,
    /// `RETURN_EXISTING`: the start answers the existing workflow's id.
    ReturnExisting,
    /// `FAIL_ON_RUNNING`: refused while the existing workflow runs; afterwards a new one starts.
    FailOnRunning,
}

impl Strategy {
    /// Every strategy, by its Conductor name.
    pub const ALL: [Strategy; 3] = [Strategy::Fail, Strategy::ReturnExisting, Strategy::FailOnRunning];

    /// The strategy of this Conductor name, if it is one.
    pub fn parse(name: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The strategy a start asked for (as stored with it): `FAIL` when it named none.
    pub fn of(name: Option<&str>) -> Strategy {
        name.and_then(Strategy::parse).unwrap_or(Strategy::Fail)
    }

    /// Its Conductor name.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Fail => "FAIL",
            Strategy::ReturnExisting => "RETURN_EXISTING",
            Strategy::FailOnRunning => "FAIL_ON_RUNNING",
        }
    }
}

/// What becomes of a start whose key is already held by `existing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The start goes ahead and takes the key.
    Take,
    /// The start answers this existing workflow instead.
    Existing(WorkflowId),
    /// The start is refused, for this reason.
    Refused(String),
}

/// Decides a start whose `key` is held by `existing`; `running` says whether that workflow still
/// runs (asked only when the strategy depends on it).
pub fn claim<E>(
    strategy: Strategy,
    key: &str,
    existing: &str,
    running: impl FnOnce() -> Result<bool, E>,
) -> Result<Claim, E> {
    Ok(match strategy {
        Strategy::ReturnExisting => Claim::Existing(existing.into()),
        Strategy::FailOnRunning if !running()? => Claim::Take,
        Strategy::Fail | Strategy::FailOnRunning => Claim::Refused(format!(
            "Workflow {existing} was already started with idempotencyKey {key} (idempotencyStrategy {})",
            strategy.as_str()
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_strategy_decides_a_reused_key() {
        let never = || -> Result<bool, ()> { panic!("the strategy does not depend on the run") };
        assert_eq!(claim(Strategy::ReturnExisting, "k", "w1", never), Ok(Claim::Existing("w1".into())));
        assert!(matches!(claim(Strategy::Fail, "k", "w1", never), Ok(Claim::Refused(m)) if m.contains("w1")));
        assert_eq!(claim(Strategy::FailOnRunning, "k", "w1", || Ok::<_, ()>(false)), Ok(Claim::Take));
        assert!(matches!(claim(Strategy::FailOnRunning, "k", "w1", || Ok::<_, ()>(true)), Ok(Claim::Refused(_))));
        assert_eq!(Strategy::of(None), Strategy::Fail);
        assert_eq!(Strategy::of(Some("RETURN_EXISTING")), Strategy::ReturnExisting);
        assert_eq!(Strategy::parse("SOMETIMES"), None);
    }
}
