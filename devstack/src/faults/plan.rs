//! What to inject: services, operations, faults, rules, plans, and the seeded decisions.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::{Result, bail};

/// An AWS service behind a proxy, as the request names it (`X-Amz-Target` prefix, or the
/// endpoint's default for S3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// DynamoDB (`DynamoDB_20120810.*`).
    DynamoDb,
    /// DynamoDB Streams (`DynamoDBStreams_20120810.*`), served by the DynamoDB endpoint.
    DynamoDbStreams,
    /// S3 (REST-XML; operation from method, path and query).
    S3,
    /// EventBridge (`AWSEvents.*`).
    EventBridge,
    /// SQS (`AmazonSQS.*`), served by the same moto endpoint as EventBridge.
    Sqs,
}

impl Service {
    /// A short, stable name (`dynamodb`, `dynamodbstreams`, `s3`, `eventbridge`, `sqs`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::DynamoDbStreams => "dynamodbstreams",
            Service::S3 => "s3",
            Service::EventBridge => "eventbridge",
            Service::Sqs => "sqs",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One API operation of one service, e.g. `dynamodb/BatchWriteItem` or `s3/UploadPart`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    /// The service.
    pub service: Service,
    /// The operation name as AWS spells it (`PutItem`, `PutEvents`, `CreateMultipartUpload`).
    pub name: String,
}

impl Operation {
    /// An operation of `service` named `name`.
    pub fn new(service: Service, name: impl Into<String>) -> Self {
        Operation {
            service,
            name: name.into(),
        }
    }

    /// Whether [`Fault::PartialBatch`] can apply: DynamoDB `BatchWriteItem` and EventBridge
    /// `PutEvents`.
    pub fn supports_partial(&self) -> bool {
        matches!(
            (self.service, self.name.as_str()),
            (Service::DynamoDb, "BatchWriteItem") | (Service::EventBridge, "PutEvents")
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.name)
    }
}

/// A fault to inject into one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The service's usual throttling error, without forwarding: DynamoDB `400`
    /// `ProvisionedThroughputExceededException`; DynamoDB Streams and EventBridge `400`
    /// `ThrottlingException`; SQS `400` `RequestThrottled`; S3 `503` `SlowDown`.
    Throttle,
    /// `400` `ThrottlingException` (DynamoDB's request-rate throttle, distinct from
    /// `ProvisionedThroughputExceededException`); `503` `SlowDown` on S3.
    ThrottlingException,
    /// `500` with the service's internal-error shape (`InternalServerError`,
    /// `InternalException`, S3 `InternalError`), without forwarding.
    InternalError,
    /// `503` `ServiceUnavailable`, without forwarding.
    ServiceUnavailable,
    /// The request is read, not forwarded, and the connection is reset (TCP RST) instead of
    /// answered.
    ConnectionReset,
    /// The request is forwarded (the upstream applies it) and the connection is then reset
    /// instead of answered: the client sees an I/O error for a write that happened.
    ResetAfterForward,
    /// The request waits this long before anything else happens. Latency rules add up.
    Latency(Duration),
    /// A partial result the SDK does not report as an error: `BatchWriteItem` forwards only
    /// a subset of the items and returns the rest under `UnprocessedItems`; `PutEvents`
    /// forwards only a subset of the entries and reports the rest as failed entries
    /// (`InternalFailure`) at their positions, with `FailedEntryCount`. Only matches those
    /// two operations.
    PartialBatch,
    /// Like [`Fault::PartialBatch`], but the held-back entries are exactly those whose JSON
    /// contains this text (a persistent, targeted per-entry failure: "record k always
    /// fails"). A batch with no such entry is forwarded untouched.
    FailEntriesContaining(String),
}

impl Fault {
    /// Whether the fault is a partial result (applies to batch operations only).
    pub fn is_partial(&self) -> bool {
        matches!(self, Fault::PartialBatch | Fault::FailEntriesContaining(_))
    }

    /// The fault's kind (what the statistics count).
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::Throttle => FaultKind::Throttle,
            Fault::ThrottlingException => FaultKind::ThrottlingException,
            Fault::InternalError => FaultKind::InternalError,
            Fault::ServiceUnavailable => FaultKind::ServiceUnavailable,
            Fault::ConnectionReset => FaultKind::ConnectionReset,
            Fault::ResetAfterForward => FaultKind::ResetAfterForward,
            Fault::Latency(_) => FaultKind::Latency,
            Fault::PartialBatch | Fault::FailEntriesContaining(_) => FaultKind::PartialBatch,
        }
    }
}

/// The kind of a [`Fault`], without its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// [`Fault::Throttle`].
    Throttle,
    /// [`Fault::ThrottlingException`].
    ThrottlingException,
    /// [`Fault::InternalError`].
    InternalError,
    /// [`Fault::ServiceUnavailable`].
    ServiceUnavailable,
    /// [`Fault::ConnectionReset`].
    ConnectionReset,
    /// [`Fault::ResetAfterForward`].
    ResetAfterForward,
    /// [`Fault::Latency`].
    Latency,
    /// [`Fault::PartialBatch`].
    PartialBatch,
}

impl FaultKind {
    /// A short, stable name (`throttle`, `internal_error`, `connection_reset`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::ThrottlingException => "throttling_exception",
            FaultKind::InternalError => "internal_error",
            FaultKind::ServiceUnavailable => "service_unavailable",
            FaultKind::ConnectionReset => "connection_reset",
            FaultKind::ResetAfterForward => "reset_after_forward",
            FaultKind::Latency => "latency",
            FaultKind::PartialBatch => "partial_batch",
        }
    }

    /// Whether the client receives no AWS response at all (an I/O error instead).
    pub fn is_reset(self) -> bool {
        matches!(
            self,
            FaultKind::ConnectionReset | FaultKind::ResetAfterForward
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Inject `fault` into a fraction `rate` of the requests that match `service` and `operation`
/// (`None` matches any).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The service to match; any when `None`.
    pub service: Option<Service>,
    /// The operation name to match (`PutItem`); any when `None`.
    pub operation: Option<String>,
    /// What to inject.
    pub fault: Fault,
    /// Probability per matching request, 0.0–1.0.
    pub rate: f64,
}

impl FaultRule {
    /// A rule matching every operation of every service.
    pub fn new(fault: Fault, rate: f64) -> Self {
        FaultRule {
            service: None,
            operation: None,
            fault,
            rate,
        }
    }

    /// A rule for one operation of one service.
    ///
    /// ```
    /// use dynabridge_devstack::faults::{Fault, FaultRule, Service};
    /// let r = FaultRule::on(Service::DynamoDb, "PutItem", Fault::Throttle, 0.2);
    /// assert_eq!(r.operation.as_deref(), Some("PutItem"));
    /// ```
    pub fn on(service: Service, operation: impl Into<String>, fault: Fault, rate: f64) -> Self {
        FaultRule {
            service: Some(service),
            operation: Some(operation.into()),
            fault,
            rate,
        }
    }

    /// Restricts the rule to one service.
    pub fn service(mut self, service: Service) -> Self {
        self.service = Some(service);
        self
    }

    /// Restricts the rule to one operation name.
    pub fn operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = Some(operation.into());
        self
    }

    /// Whether this rule applies to `op` (a partial-batch rule only to operations that have
    /// per-entry results).
    pub fn matches(&self, op: &Operation) -> bool {
        self.service.is_none_or(|s| s == op.service)
            && self.operation.as_deref().is_none_or(|n| n == op.name)
            && (!self.fault.is_partial() || op.supports_partial())
    }
}

/// A seed and the rules to apply. The same plan and the same sequence of requests per
/// operation give the same faults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Seeds every decision.
    pub seed: u64,
    /// Rules, evaluated in order for every request.
    pub rules: Vec<FaultRule>,
}

impl FaultPlan {
    /// A plan with no rules: every request is forwarded unchanged.
    pub fn none() -> Self {
        FaultPlan::default()
    }

    /// An empty plan with this seed.
    pub fn new(seed: u64) -> Self {
        FaultPlan {
            seed,
            rules: Vec::new(),
        }
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: FaultRule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds [`FaultRule::on`]`(service, operation, fault, rate)`.
    pub fn on(
        self,
        service: Service,
        operation: impl Into<String>,
        fault: Fault,
        rate: f64,
    ) -> Self {
        self.rule(FaultRule::on(service, operation, fault, rate))
    }

    /// Checks every rate is within 0.0–1.0.
    pub fn validate(&self) -> Result<()> {
        for r in &self.rules {
            if !(0.0..=1.0).contains(&r.rate) {
                bail!("fault rule {r:?}: rate must be within 0.0..=1.0");
            }
        }
        Ok(())
    }
}

/// SplitMix64: tiny, fast, well distributed, and enough for reproducible fault decisions.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Which of `n` entries to hold back: each with probability ½, at least one.
    pub(crate) fn hold_back(&mut self, n: usize) -> Vec<bool> {
        let mut held: Vec<bool> = (0..n).map(|_| self.next_u64() & 1 == 1).collect();
        if n > 0 && !held.iter().any(|h| *h) {
            held[(self.next_u64() % n as u64) as usize] = true;
        }
        held
    }
}

/// What happens to one request.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    /// Position of this request among its operation's requests since the plan was set.
    pub index: u64,
    /// Total added latency (zero when no latency rule fired).
    pub latency: Duration,
    /// The first error/reset fault that fired, if any.
    pub terminal: Option<Fault>,
    /// A partial-batch rule fired (and no terminal fault did).
    pub partial: bool,
    /// Chooses the held-back entries of a partial batch.
    pub selector: SplitMix64,
    /// Set by [`Fault::FailEntriesContaining`]: hold back the entries containing it.
    pub marker: Option<String>,
}

/// How a partial batch picks its held-back entries.
#[derive(Debug)]
pub(crate) enum HoldBack<'a> {
    /// Each with probability ½, at least one.
    Random(&'a mut SplitMix64),
    /// Those whose JSON contains the text.
    Containing(&'a str),
}

impl HoldBack<'_> {
    /// Flags per entry; `None` when nothing would be held back (no partial result).
    pub(crate) fn choose(&mut self, entries: &[&serde_json::Value]) -> Option<Vec<bool>> {
        match self {
            HoldBack::Random(rng) => Some(rng.hold_back(entries.len())),
            HoldBack::Containing(marker) => {
                let held: Vec<bool> = entries
                    .iter()
                    .map(|e| e.to_string().contains(*marker))
                    .collect();
                held.iter().any(|h| *h).then_some(held)
            }
        }
    }
}

/// Turns a plan into per-request decisions. Every operation has its own random stream
/// (seeded from the plan's seed and the operation's name) and every matching rule consumes
/// exactly one draw per request, so the n-th request of an operation gets the same decision
/// whatever the other operations do and whatever earlier requests' outcomes were.
#[derive(Debug)]
pub(crate) struct Decider {
    plan: FaultPlan,
    streams: HashMap<Operation, (SplitMix64, u64)>,
}

impl Decider {
    pub(crate) fn new(plan: FaultPlan) -> Self {
        Decider {
            plan,
            streams: HashMap::new(),
        }
    }

    pub(crate) fn decide(&mut self, op: &Operation) -> Decision {
        let seed = self.plan.seed;
        let (rng, next) = self
            .streams
            .entry(op.clone())
            .or_insert_with(|| (SplitMix64::new(seed ^ fnv1a(op)), 0));
        let index = *next;
        *next += 1;
        let mut latency = Duration::ZERO;
        let mut terminal = None;
        let mut partial = false;
        let mut marker = None;
        for rule in self.plan.rules.iter().filter(|r| r.matches(op)) {
            if rng.next_f64() >= rule.rate {
                continue;
            }
            match &rule.fault {
                Fault::Latency(d) => latency += *d,
                Fault::PartialBatch => partial = true,
                Fault::FailEntriesContaining(m) => {
                    partial = true;
                    marker = Some(m.clone());
                }
                f => {
                    if terminal.is_none() {
                        terminal = Some(f.clone());
                    }
                }
            }
        }
        let selector = SplitMix64::new(rng.next_u64());
        Decision {
            index,
            latency,
            partial: partial && terminal.is_none(),
            terminal,
            selector,
            marker,
        }
    }
}

fn fnv1a(op: &Operation) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in op
        .service
        .as_str()
        .bytes()
        .chain([b'/'])
        .chain(op.name.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(name: &str) -> Operation {
        Operation::new(Service::DynamoDb, name)
    }

    #[test]
    fn same_seed_same_decisions_per_operation_whatever_the_interleaving() {
        let plan = FaultPlan::new(7).rule(FaultRule::new(Fault::Throttle, 0.5));
        let mut a = Decider::new(plan.clone());
        let mut b = Decider::new(plan);
        let seq_a: Vec<bool> = (0..64)
            .map(|_| a.decide(&op("PutItem")).terminal.is_some())
            .collect();
        let seq_b: Vec<bool> = (0..64)
            .map(|_| {
                b.decide(&op("GetItem"));
                b.decide(&op("PutItem")).terminal.is_some()
            })
            .collect();
        assert_eq!(seq_a, seq_b);
        let fired = seq_a.iter().filter(|f| **f).count();
        assert!((16..=48).contains(&fired), "{fired} of 64 at rate 0.5");
    }

    #[test]
    fn rates_zero_and_one_are_exact() {
        let plan = FaultPlan::new(1)
            .on(Service::DynamoDb, "PutItem", Fault::InternalError, 1.0)
            .on(Service::DynamoDb, "GetItem", Fault::InternalError, 0.0);
        let mut d = Decider::new(plan);
        for _ in 0..100 {
            assert_eq!(
                d.decide(&op("PutItem")).terminal,
                Some(Fault::InternalError)
            );
            assert_eq!(d.decide(&op("GetItem")).terminal, None);
        }
    }

    #[test]
    fn partial_rules_only_match_batch_operations() {
        let rule = FaultRule::new(Fault::PartialBatch, 1.0);
        assert!(rule.matches(&op("BatchWriteItem")));
        assert!(!rule.matches(&op("PutItem")));
        assert!(rule.matches(&Operation::new(Service::EventBridge, "PutEvents")));
        assert!(!rule.matches(&Operation::new(Service::Sqs, "SendMessage")));
    }

    #[test]
    fn hold_back_holds_at_least_one() {
        let mut rng = SplitMix64::new(3);
        for n in 1..30 {
            assert!(rng.hold_back(n).iter().any(|h| *h));
        }
        assert!(rng.hold_back(0).is_empty());
    }

    #[test]
    fn invalid_rates_are_rejected() {
        assert!(
            FaultPlan::new(0)
                .rule(FaultRule::new(Fault::Throttle, 1.5))
                .validate()
                .is_err()
        );
    }
}
