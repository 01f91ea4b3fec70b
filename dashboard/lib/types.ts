// The gateway's JSON, as the dashboard reads it.

export type Json = Record<string, unknown>;

export interface Detection {
  id: string;
  key: string;
  severity: "critical" | "warning" | "info" | string;
  category: string;
  database_id: string;
  detector_name: string;
  title: string;
  description: string;
  evidence: Json | null;
  recommendation: string;
  action_type: string;
  timestamp: number;
  occurrences?: number;
}

export interface Action {
  action_id: string;
  detection_id: string;
  action_type: string;
  database_id: string;
  status: string;
  message: string;
  error: string | null;
  created_at: string;
  completed: string;
  can_rollback: boolean;
  description: string | null;
  changes: Json | null;
}

export interface LedgerEntry {
  action_id: string;
  state: "verifying" | "kept" | "rolled_back" | "no_effect" | "not_judged" | string;
  reason: string;
  cycles: number;
  before: { served?: { mean_ms?: number; calls?: number } } | null;
  after: { served?: { mean_ms?: number; calls?: number; before_mean_ms?: number } } | null;
  time_saved_ms_per_day: number;
  write_cost_ms_per_day: number;
  storage_bytes: number;
}

export interface Database {
  database_id: string;
  database_name: string;
  database_type: string;
  host: string;
  port: number;
  status: string;
  health_score: number;
  enabled: boolean;
  version: string;
  last_error: string;
  connection_string_redacted: string;
  features?: {
    pg_stat_statements?: boolean;
    hypopg?: boolean;
    unavailable?: { name: string; reason: string; remedy: string }[];
  };
}

export interface Metrics {
  database_id: string;
  timestamp: number;
  health_score?: number;
  connection_health?: number;
  query_health?: number;
  cache_health?: number;
  measurements?: {
    active_connections?: number;
    max_connections?: number;
    p95_query_latency_ms?: number;
    avg_query_latency_ms?: number;
    sequential_scans?: number;
    cache_hit_rate?: number;
  };
  extended_metrics?: Record<string, number>;
}

export interface Thresholds {
  connection_pool_critical?: number;
  /** Superseded by the per-second index advisor fields; no longer read by the analyser. */
  sequential_scan_delta?: number;
  p95_latency_ms?: number;
  cache_hit_rate_threshold?: number;
  table_bloat_ratio?: number;
  long_query_seconds?: number;
  idle_transaction_seconds?: number;
  index_min_table_rows?: number;
  index_min_cost_reduction?: number;
  /** Seconds of database time per second (0.02 = 2 % of one core). */
  index_min_statement_seconds_per_second?: number;
  index_min_rows_read_per_second?: number;
  cache_min_block_reads_per_second?: number;
  latency_min_calls_per_second?: number;
  index_max_new_per_table_per_hour?: number;
}

export interface SystemConfig {
  thresholds?: Thresholds;
  onboarding_complete?: boolean;
  execution_mode?: string;
  webhook?: { url?: string; auth_header?: string; enabled?: boolean; events?: string[] };
  detection_cooldown_seconds?: number;
  verification?: { cycles?: number; min_calls?: number; improvement_threshold?: number; regression_tolerance?: number; rollback_on_no_effect?: boolean; timeout_seconds?: number };
}

export interface Status {
  onboarding_complete: boolean;
  services: Record<string, string>;
}
