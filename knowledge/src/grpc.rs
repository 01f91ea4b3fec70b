//! The `knowledge.KnowledgeService` gRPC server: validates and converts requests, delegates to
//! the store, converts answers. Bad input answers INVALID_ARGUMENT, an unreachable Redis
//! UNAVAILABLE; "not found" stays in-band as in the original.

use proto::knowledge::knowledge_service_server::KnowledgeService;
use proto::knowledge::*;
use proto::status::{ActionStatus, DatabaseStatus, LedgerState, RegistrationOutcome, Resolution};
use tonic::{Request, Response as GrpcResponse, Status};
use tracing::warn;

use crate::error::KnowledgeError;
use crate::records;
use crate::store::actions::{MAX_LIST, StatusUpdate, UpdateOutcome};
use crate::store::ledger;
use crate::store::{
    DatabaseChange, DatabaseRecord, HealthRecord, RegisterOutcome, ResolveOutcome, Store,
};

type Reply<T> = Result<GrpcResponse<T>, Status>;

pub struct KnowledgeGrpc {
    store: Store,
}

impl KnowledgeGrpc {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Converts an error for the client, logging the ones an operator may need to see.
fn fail(rpc: &'static str, error: KnowledgeError) -> Status {
    if !matches!(error, KnowledgeError::Invalid(_)) {
        warn!(rpc, %error, "request failed");
    }
    error.into()
}

fn ok<T>(value: T) -> Reply<T> {
    Ok(GrpcResponse::new(value))
}

fn done(success: bool, message: impl Into<String>) -> Reply<Response> {
    ok(Response {
        success,
        message: message.into(),
    })
}

fn invalid(message: impl Into<String>) -> KnowledgeError {
    KnowledgeError::invalid(message)
}

fn database_filter(database_id: &str) -> Result<(), KnowledgeError> {
    if database_id.is_empty() {
        Ok(())
    } else {
        records::database_id(database_id)
    }
}

fn action_status(
    value: &str,
    default: Option<ActionStatus>,
) -> Result<ActionStatus, KnowledgeError> {
    match (value, default) {
        ("", Some(default)) => Ok(default),
        ("", None) => Err(invalid("status is required")),
        (value, _) => value
            .parse()
            .map_err(|e: proto::status::UnknownWord| invalid(e.to_string())),
    }
}

fn registered_database(
    store: &Store,
    record: DatabaseRecord,
    health: HealthRecord,
    include_connection_string: bool,
) -> RegisteredDatabase {
    let (connection_string, last_error) = match include_connection_string {
        false => (String::new(), health.last_error),
        true => match store.connection_string(&record) {
            Ok(plain) => (plain, health.last_error),
            Err(error) => (String::new(), error.to_string()),
        },
    };
    RegisteredDatabase {
        connection_string_redacted: store.redacted_connection_string(&record),
        database_id: record.id,
        database_type: record.database_type,
        database_name: record.database_name,
        host: record.host,
        port: record.port,
        version: if health.version.is_empty() {
            record.version
        } else {
            health.version
        },
        registered_at: record.registered_at,
        last_seen: health.last_seen,
        status: health.status,
        health_score: health.health_score,
        enabled: record.enabled,
        connection_string,
        features: health.features,
        last_error,
        metadata: record.metadata,
    }
}

#[tonic::async_trait]
impl KnowledgeService for KnowledgeGrpc {
    async fn register_detection(
        &self,
        request: Request<RegisterDetectionRequest>,
    ) -> Reply<DetectionResponse> {
        let r = request.into_inner();
        let validate = || -> Result<(), KnowledgeError> {
            if !r.id.is_empty() {
                records::record_id("id", &r.id)?;
            }
            records::detection_key(&r.key)?;
            records::database_id(&r.database_id)?;
            records::severity(&r.severity)?;
            records::category(&r.category)?;
            records::json_object("evidence_json", &r.evidence_json)?;
            records::json_object("action_metadata_json", &r.action_metadata_json)?;
            if !r.value.is_finite() {
                return Err(invalid("value must be a finite number"));
            }
            Ok(())
        };
        validate().map_err(|e| fail("RegisterDetection", e))?;
        let detection = Detection {
            id: r.id,
            key: r.key.clone(),
            severity: r.severity,
            category: r.category,
            database_id: r.database_id,
            value: r.value,
            created_at: r.created_at,
            detector_name: r.detector_name,
            title: r.title,
            description: r.description,
            evidence_json: r.evidence_json,
            recommendation: r.recommendation,
            action_type: r.action_type,
            action_metadata_json: r.action_metadata_json,
            ..Default::default()
        };
        let outcome = self
            .store
            .register_detection(detection)
            .await
            .map_err(|e| fail("RegisterDetection", e))?;
        ok(match outcome {
            RegisterOutcome::Created(id) => DetectionResponse {
                success: true,
                message: "detection registered".into(),
                detection_id: id,
                outcome: RegistrationOutcome::Created.to_string(),
                cooldown_until: 0,
            },
            RegisterOutcome::Duplicate(id) => DetectionResponse {
                success: true,
                message: format!("an active detection already has key {}", r.key),
                detection_id: id,
                outcome: RegistrationOutcome::Duplicate.to_string(),
                cooldown_until: 0,
            },
            RegisterOutcome::CoolingDown { until } => DetectionResponse {
                success: false,
                message: format!(
                    "key {} is cooling down after a failed, rejected or rolled-back fix",
                    r.key
                ),
                detection_id: String::new(),
                outcome: RegistrationOutcome::CoolingDown.to_string(),
                cooldown_until: until,
            },
        })
    }

    async fn is_detection_active(
        &self,
        request: Request<DetectionKeyRequest>,
    ) -> Reply<DetectionStatusResponse> {
        let key = request.into_inner().key;
        records::detection_key(&key).map_err(|e| fail("IsDetectionActive", e))?;
        let (active, cooldown) = self
            .store
            .detection_state_for_key(&key)
            .await
            .map_err(|e| fail("IsDetectionActive", e))?;
        ok(DetectionStatusResponse {
            is_active: active.is_some(),
            detection_id: active.unwrap_or_default(),
            cooling_down: cooldown.is_some(),
            cooldown_until: cooldown.unwrap_or_default(),
        })
    }

    async fn get_active_detections(
        &self,
        request: Request<DatabaseFilterRequest>,
    ) -> Reply<DetectionListResponse> {
        let database_id = request.into_inner().database_id;
        database_filter(&database_id).map_err(|e| fail("GetActiveDetections", e))?;
        let detections = self
            .store
            .active_detections(&database_id)
            .await
            .map_err(|e| fail("GetActiveDetections", e))?;
        ok(DetectionListResponse { detections })
    }

    async fn mark_detection_resolved(
        &self,
        request: Request<ResolveDetectionRequest>,
    ) -> Reply<Response> {
        let r = request.into_inner();
        let parse = || -> Result<Resolution, KnowledgeError> {
            records::record_id("detection_id", &r.detection_id)?;
            if r.cooldown_seconds < 0 {
                return Err(invalid("cooldown_seconds must be >= 0"));
            }
            if r.reason.is_empty() {
                return Ok(Resolution::Fixed);
            }
            r.reason
                .parse()
                .map_err(|e: proto::status::UnknownWord| invalid(e.to_string()))
        };
        let resolution = parse().map_err(|e| fail("MarkDetectionResolved", e))?;
        let outcome = self
            .store
            .resolve_detection(&r.detection_id, resolution, &r.solution, r.cooldown_seconds)
            .await
            .map_err(|e| fail("MarkDetectionResolved", e))?;
        match outcome {
            ResolveOutcome::Resolved => done(true, format!("detection resolved ({resolution})")),
            ResolveOutcome::AlreadyResolved => done(true, "detection was already resolved"),
            ResolveOutcome::NotFound => {
                done(false, format!("detection {} not found", r.detection_id))
            }
        }
    }

    async fn register_action(
        &self,
        request: Request<RegisterActionRequest>,
    ) -> Reply<ActionResponse> {
        let r = request.into_inner();
        let parse = || -> Result<ActionStatus, KnowledgeError> {
            if !r.id.is_empty() {
                records::record_id("id", &r.id)?;
            }
            if !r.detection_id.is_empty() {
                records::record_id("detection_id", &r.detection_id)?;
            }
            records::record_id("action_type", &r.action_type)?;
            records::database_id(&r.database_id)?;
            records::json_object("params_json", &r.params_json)?;
            action_status(&r.status, Some(ActionStatus::Queued))
        };
        let status = parse().map_err(|e| fail("RegisterAction", e))?;
        let message = if r.message.is_empty() {
            format!("Action {status}: {}", r.action_type)
        } else {
            r.message
        };
        let action = Action {
            id: r.id,
            detection_id: r.detection_id,
            action_type: r.action_type,
            database_id: r.database_id,
            status: status.to_string(),
            created_at: r.created_at,
            message,
            params_json: r.params_json,
            can_rollback: r.can_rollback,
            ..Default::default()
        };
        let (id, created) = self
            .store
            .register_action(action)
            .await
            .map_err(|e| fail("RegisterAction", e))?;
        ok(ActionResponse {
            success: true,
            message: if created {
                "action registered".into()
            } else {
                "action was already registered; left unchanged".into()
            },
            action_id: id,
        })
    }

    async fn update_action_status(&self, request: Request<UpdateActionRequest>) -> Reply<Response> {
        let r = request.into_inner();
        let parse = || -> Result<ActionStatus, KnowledgeError> {
            records::record_id("action_id", &r.action_id)?;
            records::json_object("result_json", &r.result_json)?;
            if r.cooldown_seconds < 0 {
                return Err(invalid("cooldown_seconds must be >= 0"));
            }
            action_status(&r.status, None)
        };
        let status = parse().map_err(|e| fail("UpdateActionStatus", e))?;
        let expected = r
            .expected_status
            .iter()
            .map(|s| action_status(s, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail("UpdateActionStatus", e))?;
        let update = StatusUpdate {
            status,
            message: r.message,
            error: r.error,
            result_json: r.result_json,
            cooldown_seconds: r.cooldown_seconds,
            expected,
        };
        let outcome = self
            .store
            .update_action(&r.action_id, update)
            .await
            .map_err(|e| fail("UpdateActionStatus", e))?;
        match outcome {
            UpdateOutcome::Updated => done(true, format!("action is now {status}")),
            UpdateOutcome::NotFound => done(false, format!("action {} not found", r.action_id)),
            UpdateOutcome::Conflict(current) => Err(proto::error::Error::conflict(format!(
                "action {} is {current}, not {}",
                r.action_id,
                r.expected_status.join(" or ")
            ))
            .into()),
        }
    }

    async fn get_pending_actions(
        &self,
        request: Request<DatabaseFilterRequest>,
    ) -> Reply<ActionListResponse> {
        let database_id = request.into_inner().database_id;
        database_filter(&database_id).map_err(|e| fail("GetPendingActions", e))?;
        let actions = self
            .store
            .pending_actions(&database_id)
            .await
            .map_err(|e| fail("GetPendingActions", e))?;
        ok(ActionListResponse { actions })
    }

    async fn register_database(
        &self,
        request: Request<RegisterDatabaseRequest>,
    ) -> Reply<DatabaseResponse> {
        let r = request.into_inner();
        let record = DatabaseRecord {
            id: r.database_id,
            database_type: r.database_type,
            database_name: r.database_name,
            host: r.host,
            port: r.port,
            version: r.version,
            registered_at: r.registered_at,
            metadata: r.metadata,
            enabled: r.enabled,
            ..Default::default()
        };
        let created = self
            .store
            .register_database(record, &r.connection_string)
            .await
            .map_err(|e| fail("RegisterDatabase", e))?;
        ok(DatabaseResponse {
            success: true,
            message: if created {
                "database registered".into()
            } else {
                "database registration updated".into()
            },
        })
    }

    async fn get_database(
        &self,
        request: Request<GetDatabaseRequest>,
    ) -> Reply<GetDatabaseResponse> {
        let r = request.into_inner();
        records::database_id(&r.database_id).map_err(|e| fail("GetDatabase", e))?;
        let Some((record, health)) = self
            .store
            .get_database(&r.database_id)
            .await
            .map_err(|e| fail("GetDatabase", e))?
        else {
            return ok(GetDatabaseResponse::default());
        };
        let connection_string = if r.include_connection_string {
            self.store
                .connection_string(&record)
                .map_err(|e| fail("GetDatabase", e))?
        } else {
            String::new()
        };
        let db = registered_database(&self.store, record, health, false);
        ok(GetDatabaseResponse {
            found: true,
            database_id: db.database_id,
            connection_string,
            database_type: db.database_type,
            database_name: db.database_name,
            host: db.host,
            port: db.port,
            version: db.version,
            registered_at: db.registered_at,
            last_seen: db.last_seen,
            status: db.status,
            health_score: db.health_score,
            metadata: db.metadata,
            enabled: db.enabled,
            connection_string_redacted: db.connection_string_redacted,
            features: db.features,
            last_error: db.last_error,
        })
    }

    async fn list_databases(
        &self,
        request: Request<ListDatabasesRequest>,
    ) -> Reply<DatabaseListResponse> {
        let r = request.into_inner();
        let databases = self
            .store
            .list_databases()
            .await
            .map_err(|e| fail("ListDatabases", e))?
            .into_iter()
            .filter(|(record, _)| !r.enabled_only || record.enabled)
            .map(|(record, health)| {
                registered_database(&self.store, record, health, r.include_connection_strings)
            })
            .collect();
        ok(DatabaseListResponse { databases })
    }

    async fn update_database_health(
        &self,
        request: Request<UpdateDatabaseHealthRequest>,
    ) -> Reply<Response> {
        let r = request.into_inner();
        let validate = || -> Result<(), KnowledgeError> {
            records::database_id(&r.database_id)?;
            let status: DatabaseStatus = records::word("status", &r.status)?;
            if status == DatabaseStatus::Unknown {
                return Err(invalid(
                    "invalid status \"unknown\": report healthy, degraded, offline or unreachable"
                        .to_owned(),
                ));
            }
            if !(0.0..=1.0).contains(&r.health_score) {
                return Err(invalid(format!(
                    "invalid health_score {}: expected 0-1",
                    r.health_score
                )));
            }
            Ok(())
        };
        validate().map_err(|e| fail("UpdateDatabaseHealth", e))?;
        let report = HealthRecord {
            last_seen: r.last_seen,
            status: r.status,
            health_score: r.health_score,
            version: r.version,
            features: r.features,
            last_error: r.last_error,
        };
        let found = self
            .store
            .update_health(&r.database_id, report)
            .await
            .map_err(|e| fail("UpdateDatabaseHealth", e))?;
        if found {
            done(true, "health updated")
        } else {
            done(
                false,
                format!("database {} is not registered", r.database_id),
            )
        }
    }

    async fn unregister_database(
        &self,
        request: Request<UnregisterDatabaseRequest>,
    ) -> Reply<Response> {
        let id = request.into_inner().database_id;
        records::database_id(&id).map_err(|e| fail("UnregisterDatabase", e))?;
        let removed = self
            .store
            .unregister_database(&id)
            .await
            .map_err(|e| fail("UnregisterDatabase", e))?;
        if removed {
            done(true, "database unregistered")
        } else {
            done(false, format!("database {id} is not registered"))
        }
    }

    async fn update_database(&self, request: Request<UpdateDatabaseRequest>) -> Reply<Response> {
        let r = request.into_inner();
        records::database_id(&r.database_id).map_err(|e| fail("UpdateDatabase", e))?;
        let change = DatabaseChange {
            connection_string: Some(r.connection_string).filter(|s| !s.is_empty()),
            database_name: Some(r.database_name).filter(|s| !s.is_empty()),
            enabled: r.enabled,
        };
        let found = self
            .store
            .update_database(&r.database_id, change)
            .await
            .map_err(|e| fail("UpdateDatabase", e))?;
        if found {
            done(true, "database updated")
        } else {
            done(
                false,
                format!("database {} is not registered", r.database_id),
            )
        }
    }

    async fn get_system_config(
        &self,
        _request: Request<GetSystemConfigRequest>,
    ) -> Reply<SystemConfig> {
        let config = self
            .store
            .system_config()
            .await
            .map_err(|e| fail("GetSystemConfig", e))?;
        ok(config)
    }

    async fn save_system_config(
        &self,
        request: Request<SaveSystemConfigRequest>,
    ) -> Reply<Response> {
        let config = request
            .into_inner()
            .config
            .ok_or_else(|| fail("SaveSystemConfig", invalid("config is required")))?;
        self.store
            .save_system_config(config)
            .await
            .map_err(|e| fail("SaveSystemConfig", e))?;
        done(true, "configuration saved")
    }

    async fn get_system_status(
        &self,
        _request: Request<GetSystemStatusRequest>,
    ) -> Reply<SystemStatus> {
        let status = self
            .store
            .system_status()
            .await
            .map_err(|e| fail("GetSystemStatus", e))?;
        ok(status)
    }

    async fn flush_all_data(
        &self,
        request: Request<FlushAllDataRequest>,
    ) -> Reply<FlushAllDataResponse> {
        let include_registry = request.into_inner().include_registry;
        let deleted = self
            .store
            .flush(include_registry)
            .await
            .map_err(|e| fail("FlushAllData", e))?;
        let what = if include_registry {
            "history, database registry and configuration"
        } else {
            "history (database registry and configuration kept)"
        };
        ok(FlushAllDataResponse {
            success: true,
            message: format!("flushed {what}: {deleted} keys deleted"),
        })
    }

    async fn get_system_stats(
        &self,
        _request: Request<GetSystemStatsRequest>,
    ) -> Reply<GetSystemStatsResponse> {
        let stats = self
            .store
            .system_stats()
            .await
            .map_err(|e| fail("GetSystemStats", e))?;
        ok(stats)
    }

    async fn get_detection(
        &self,
        request: Request<GetDetectionRequest>,
    ) -> Reply<GetDetectionResponse> {
        let id = request.into_inner().detection_id;
        records::record_id("detection_id", &id).map_err(|e| fail("GetDetection", e))?;
        let detection = self
            .store
            .get_detection(&id)
            .await
            .map_err(|e| fail("GetDetection", e))?;
        ok(GetDetectionResponse {
            found: detection.is_some(),
            detection,
        })
    }

    async fn get_action(&self, request: Request<GetActionRequest>) -> Reply<GetActionResponse> {
        let id = request.into_inner().action_id;
        records::record_id("action_id", &id).map_err(|e| fail("GetAction", e))?;
        let action = self
            .store
            .get_action(&id)
            .await
            .map_err(|e| fail("GetAction", e))?;
        ok(GetActionResponse {
            found: action.is_some(),
            action,
        })
    }

    async fn list_actions(
        &self,
        request: Request<ListActionsRequest>,
    ) -> Reply<ActionListResponse> {
        let r = request.into_inner();
        let parse = || -> Result<(Option<ActionStatus>, usize), KnowledgeError> {
            database_filter(&r.database_id)?;
            let status = match r.status.as_str() {
                "" => None,
                s => Some(action_status(s, None)?),
            };
            let limit = match r.limit {
                0 => 100,
                n if n < 0 || n as usize > MAX_LIST => {
                    return Err(invalid(format!(
                        "invalid limit {n}: expected 1-{MAX_LIST} (0 = 100)"
                    )));
                }
                n => n as usize,
            };
            Ok((status, limit))
        };
        let (status, limit) = parse().map_err(|e| fail("ListActions", e))?;
        let actions = self
            .store
            .list_actions(&r.database_id, status, limit)
            .await
            .map_err(|e| fail("ListActions", e))?;
        ok(ActionListResponse { actions })
    }

    async fn save_ledger_entry(&self, request: Request<LedgerEntry>) -> Reply<Response> {
        let entry = request.into_inner();
        let check = || -> Result<(), KnowledgeError> {
            records::record_id("action_id", &entry.action_id)?;
            records::database_id(&entry.database_id)?;
            records::word::<LedgerState>("state", &entry.state)?;
            for (field, json) in [
                ("before_json", &entry.before_json),
                ("after_json", &entry.after_json),
                ("tracking_json", &entry.tracking_json),
            ] {
                records::json_object(field, json)?;
            }
            Ok(())
        };
        check().map_err(|e| fail("SaveLedgerEntry", e))?;
        let id = entry.action_id.clone();
        self.store
            .save_ledger_entry(entry)
            .await
            .map_err(|e| fail("SaveLedgerEntry", e))?;
        done(true, format!("ledger entry {id} saved"))
    }

    async fn get_ledger_entry(
        &self,
        request: Request<GetLedgerEntryRequest>,
    ) -> Reply<GetLedgerEntryResponse> {
        let id = request.into_inner().action_id;
        records::record_id("action_id", &id).map_err(|e| fail("GetLedgerEntry", e))?;
        let entry = self
            .store
            .get_ledger_entry(&id)
            .await
            .map_err(|e| fail("GetLedgerEntry", e))?;
        ok(GetLedgerEntryResponse {
            found: entry.is_some(),
            entry,
        })
    }

    async fn list_ledger(&self, request: Request<ListLedgerRequest>) -> Reply<ListLedgerResponse> {
        let r = request.into_inner();
        let parse = || -> Result<usize, KnowledgeError> {
            database_filter(&r.database_id)?;
            if !r.state.is_empty() {
                records::word::<LedgerState>("state", &r.state)?;
            }
            match r.limit {
                0 => Ok(100),
                n if n < 0 || n as usize > ledger::MAX_LIST => Err(invalid(format!(
                    "invalid limit {n}: expected 1-{} (0 = 100)",
                    ledger::MAX_LIST
                ))),
                n => Ok(n as usize),
            }
        };
        let limit = parse().map_err(|e| fail("ListLedger", e))?;
        let entries = self
            .store
            .list_ledger(&r.database_id, &r.state, limit)
            .await
            .map_err(|e| fail("ListLedger", e))?;
        ok(ListLedgerResponse { entries })
    }

    async fn acquire_lease(&self, request: Request<LeaseRequest>) -> Reply<LeaseResponse> {
        let r = request.into_inner();
        lease_request(&r, true).map_err(|e| fail("AcquireLease", e))?;
        let lease = self
            .store
            .acquire_lease(&r.resource, &r.holder, r.ttl_ms)
            .await
            .map_err(|e| fail("AcquireLease", e))?;
        ok(LeaseResponse {
            granted: lease.granted,
            holder: lease.holder,
            expires_in_ms: lease.expires_in_ms,
        })
    }

    async fn release_lease(&self, request: Request<LeaseRequest>) -> Reply<Response> {
        let r = request.into_inner();
        lease_request(&r, false).map_err(|e| fail("ReleaseLease", e))?;
        let released = self
            .store
            .release_lease(&r.resource, &r.holder)
            .await
            .map_err(|e| fail("ReleaseLease", e))?;
        done(
            released,
            if released {
                "released"
            } else {
                "not held by this holder"
            },
        )
    }
}

fn lease_request(r: &LeaseRequest, acquiring: bool) -> Result<(), KnowledgeError> {
    records::record_id("resource", &r.resource)?;
    records::record_id("holder", &r.holder)?;
    if acquiring && !(100..=3_600_000).contains(&r.ttl_ms) {
        return Err(invalid(format!(
            "invalid ttl_ms {}: expected 100-3600000",
            r.ttl_ms
        )));
    }
    Ok(())
}
