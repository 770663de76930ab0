//! `databaseConnections`: open connections (PromQL or PostgreSQL's `pg_stat_activity`) → the next
//! instance class on the RDS ladder ([`engine::decide_rds_resize`]): a recommendation, or with
//! `approval: Automatic` a patch of the ACK `DBInstance`.

use std::time::Duration;

use futures::{FutureExt, future::BoxFuture};

use super::{
    kind::{Deciding, Kind, SecretUse, Unit},
    plan::{Current, Planned},
    platform::Platform,
};
use crate::{
    crd::{Approval, DatabaseConnectionsTrigger, RdsResizePolicy, SecretKeyRef, Trigger},
    engine::scaling::{
        self as engine, DATABASE_CONNECTIONS_COOLDOWN, MAX_CONNECTIONS, RdsInput, ResizeAction,
        Sample, ScalingHistory,
    },
};

pub struct DatabaseConnections<'a> {
    trigger: &'a Trigger,
    spec: &'a DatabaseConnectionsTrigger,
    source: Source<'a>,
    rds: &'a RdsResizePolicy,
}

/// Where the connection count is read.
enum Source<'a> {
    Prometheus(&'a str),
    Postgres(&'a SecretKeyRef),
}

impl<'a> DatabaseConnections<'a> {
    pub(super) fn new(
        trigger: &'a Trigger,
        spec: &'a DatabaseConnectionsTrigger,
    ) -> Result<Self, &'static str> {
        let rds = trigger
            .rds_resize
            .as_ref()
            .ok_or("a databaseConnections trigger needs rdsResize (the instance class ladder)")?;
        let source = match (&spec.query, &spec.postgres) {
            (Some(query), None) => Source::Prometheus(query),
            (None, Some(pg)) => Source::Postgres(&pg.connection_secret_ref),
            _ => return Err("set exactly one of query or postgres in databaseConnections"),
        };
        Ok(DatabaseConnections {
            trigger,
            spec,
            source,
            rds,
        })
    }
}

impl Kind for DatabaseConnections<'_> {
    fn trigger(&self) -> &Trigger {
        self.trigger
    }

    fn as_str(&self) -> &'static str {
        "databaseConnections"
    }

    fn threshold(&self) -> f64 {
        self.spec.threshold as f64
    }

    fn unit(&self) -> Unit {
        Unit::Count
    }

    fn default_cooldown(&self) -> Duration {
        DATABASE_CONNECTIONS_COOLDOWN
    }

    fn plausible_max(&self) -> (f64, &'static str) {
        (MAX_CONNECTIONS, "connection count")
    }

    fn query(&self) -> Option<&str> {
        self.spec.query.as_deref()
    }

    fn assumed_start(&self) -> Option<Current> {
        let class = self.rds.current_class.as_ref();
        class
            .or(self.rds.class_ladder.first())
            .cloned()
            .map(Current::Class)
    }

    fn secrets(&self) -> Vec<SecretUse<'_>> {
        match self.source {
            Source::Prometheus(_) => Vec::new(),
            Source::Postgres(url) => vec![SecretUse {
                field: "databaseConnections.postgres.connectionSecretRef",
                name: &url.name,
                key: Some(&url.key),
            }],
        }
    }

    fn decide(&self, d: Deciding<'_>, _: &mut ScalingHistory) -> (Option<Planned>, String) {
        let Current::Class(class) = d.current else {
            return super::plan::misfit(d.current);
        };
        let input = RdsInput {
            connections: d.sample,
            threshold: self.spec.threshold,
            policy: self.rds,
            current_class: Some(class),
            cooldown: self.trigger.cooldown,
            last_action_at: d.last_action_at,
        };
        let decision = engine::decide_rds_resize(&input, d.now);
        let action = decision.action.map(|a| match a {
            ResizeAction::Apply(c) if self.rds.approval == Approval::Automatic => {
                Planned::ResizeDatabase {
                    from: c.from,
                    to: c.to,
                }
            }
            ResizeAction::Apply(c) | ResizeAction::Recommend(c) => Planned::Recommend {
                of: self.rds.db_instance_identifier.clone(),
                from: c.from,
                to: c.to,
            },
        });
        (action, decision.reason)
    }

    fn next_size(&self, current: &str) -> Option<String> {
        let rung = engine::next_rung(&self.rds.class_ladder, current);
        rung.next().map(str::to_owned)
    }

    fn approved(&self, from: &str, to: &str) -> Result<Planned, String> {
        match &self.rds.ack_db_instance_ref {
            Some(_) => Ok(Planned::ResizeDatabase {
                from: from.into(),
                to: to.into(),
            }),
            None => Err(
                "rdsResize.ackDBInstanceRef is not set, so Liftoff has no DBInstance to patch: \
                 set it, or resize by hand"
                    .into(),
            ),
        }
    }

    fn sample<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Sample> {
        async move {
            match self.source {
                Source::Prometheus(query) => io.prometheus_query(query).await,
                Source::Postgres(url) => io.postgres_connections(url).await,
            }
        }
        .boxed()
    }

    /// The ACK `DBInstance`'s class, else `rdsResize.currentClass`, else the ladder's first rung.
    fn current<'s>(&'s self, io: &'s Platform<'_>) -> BoxFuture<'s, Result<Current, String>> {
        async move {
            if let Some(ack) = &self.rds.ack_db_instance_ref {
                return io.db_instance_class(&ack.name).await.map(Current::Class);
            }
            self.rds
                .current_class
                .clone()
                .or_else(|| self.rds.class_ladder.first().cloned())
                .map(Current::Class)
                .ok_or_else(|| "rdsResize.classLadder is empty".to_string())
        }
        .boxed()
    }

    fn act<'s>(
        &'s self,
        io: &'s Platform<'_>,
        action: &'s Planned,
    ) -> BoxFuture<'s, Result<String, String>> {
        async move {
            let instance = &self.rds.db_instance_identifier;
            match action {
                Planned::ResizeDatabase { from, to } => {
                    let ack = self
                        .rds
                        .ack_db_instance_ref
                        .as_ref()
                        .ok_or("approval Automatic needs rdsResize.ackDBInstanceRef")?;
                    io.set_db_instance_class(&ack.name, to).await?;
                    Ok(format!(
                        "set DBInstance {} (RDS {instance}) class from {from} to {to}",
                        ack.name
                    ))
                }
                Planned::Recommend { from, to, .. } => Ok(format!(
                    "recommended resizing RDS {instance} from {from} to {to} (approval Manual: a person applies it)"
                )),
                other => Err(super::plan::unfit(other, self.as_str())),
            }
        }
        .boxed()
    }
}
