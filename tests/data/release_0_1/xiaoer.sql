BEGIN TRANSACTION;
CREATE TABLE agents (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL UNIQUE,
  display_name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  role TEXT NOT NULL DEFAULT 'agent',
  groups_json TEXT NOT NULL DEFAULT '[]',
  on_shift INTEGER NOT NULL DEFAULT 1,
  active INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL
);
INSERT INTO "agents" VALUES(1,'admin','店长','$argon2id$v=19$m=65536,t=3,p=4$tyLBmkFcM+CJdacBTlNbhw$/vcrQNaAh+guCPKpQGPENIbFrD4lahe0BVLCRb7Yqtg','admin','[]',1,1,'2026-11-30T13:25:53+08:00');
INSERT INTO "agents" VALUES(2,'xiaomei','小美','$argon2id$v=19$m=65536,t=3,p=4$etdKDFv3xCMQz1sR0temCw$5S4e9SBPpsRdjMhcFJE4OId7rle0J3WQJJxHEzy/1t4','agent','["售后"]',1,1,'2026-11-30T13:25:53+08:00');
CREATE TABLE console_sessions (
  token_hash TEXT PRIMARY KEY,
  agent_id INTEGER NOT NULL,
  csrf TEXT NOT NULL,
  created_at REAL NOT NULL,
  expires_at REAL NOT NULL
);
INSERT INTO "console_sessions" VALUES('3645a0a27c1df1db7bb79d9ede9fe49a9c80c07f98488a430d242d222989c6e2',1,'_UwZfE6qeic4CwN3yC0fqbhLPa8T8rkB',1.79601635513092827796e+09,1.79604515513092827792e+09);
CREATE TABLE console_settings (
  key TEXT PRIMARY KEY,
  value_json TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL DEFAULT ''
);
INSERT INTO "console_settings" VALUES('keywords','["12315", "投诉", "差评"]','2026-11-30T13:25:54+08:00','admin');
INSERT INTO "console_settings" VALUES('reannounce_after_minutes','5','2026-11-30T13:25:54+08:00','admin');
CREATE TABLE crm_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lead_id INTEGER NOT NULL,
  event TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  delivered_at TEXT,
  last_error TEXT NOT NULL DEFAULT ''
);
INSERT INTO "crm_outbox" VALUES(1,1,'lead.created','{"id": 1, "name": "赵先生", "category": "wholesale", "score": "cold", "points": 3.0, "status": "contacted", "assignee_id": 2, "phones": ["13812345678"], "wechats": ["zhao_wx88"], "conversations": ["buyer-zhao"], "source": {"conversation_id": "buyer-zhao", "channel": "douyin", "message_id": "m-1", "text": "这款T恤批发100件什么价？我的电话13812345678"}, "created_at": "2026-05-20T10:00:00+08:00", "updated_at": "2026-11-30T13:25:55+08:00", "last_activity_at": "2026-05-20T10:03:00+08:00"}','2026-11-30T13:25:55.091+08:00',0,'2026-11-30T13:25:55.091+08:00',NULL,'');
CREATE TABLE doudian_order_changes (order_id TEXT PRIMARY KEY, changed_at REAL NOT NULL);
INSERT INTO "doudian_order_changes" VALUES('DY20260518001',1779242400.0);
CREATE TABLE doudian_push_seen (
      msg_id TEXT PRIMARY KEY,
      tag INTEGER NOT NULL,
      order_id TEXT,
      data TEXT NOT NULL,
      received_at REAL NOT NULL,
      claimed_at REAL,
      processed_at REAL,
      attempts INTEGER NOT NULL DEFAULT 0,
      error TEXT
    );
INSERT INTO "doudian_push_seen" VALUES('push-0001',102,'DY20260518001','{"p_id": "DY20260518001", "order_status": 3}',1779242400.0,1779242401.0,1.79601635484694957729e+09,0,NULL);
INSERT INTO "doudian_push_seen" VALUES('push-0002',200,'DY20260517002','{"p_id": "DY20260517002", "aftersale_id": "AS001"}',1779242400.0,NULL,NULL,0,NULL);
CREATE TABLE event_cursor (
  name TEXT PRIMARY KEY,
  last_id INTEGER NOT NULL,
  updated_at REAL NOT NULL
);
INSERT INTO "event_cursor" VALUES('main',42,1.79601635518305015565e+09);
CREATE TABLE handoff_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  details TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'waiting',
  created_at TEXT NOT NULL
, priority INTEGER NOT NULL DEFAULT 0, group_name TEXT NOT NULL DEFAULT '', intent TEXT NOT NULL DEFAULT '', summary_json TEXT NOT NULL DEFAULT '{}', agent_id INTEGER, taken_at TEXT, closed_at TEXT, note TEXT NOT NULL DEFAULT '', in_hours INTEGER NOT NULL DEFAULT 1, last_agent_reply_at TEXT, announced_at TEXT, announce_count INTEGER NOT NULL DEFAULT 0, updated_at TEXT);
INSERT INTO "handoff_requests" VALUES(1,'buyer-zhang','customer_asked','订单 DY20260518001 还没发货','active','2026-11-30T13:25:54+08:00',2,'售后','ask_shipping','{"order_id": "DY20260518001", "phone": "138****5678"}',2,'2026-11-30T13:25:54+08:00',NULL,'',1,'2026-11-30T13:25:54+08:00',NULL,0,'2026-11-30T13:25:54+08:00');
INSERT INTO "handoff_requests" VALUES(2,'buyer-li','after_sales','想退货','waiting','2026-11-30T13:25:54+08:00',0,'','return_item','{}',NULL,NULL,NULL,'',1,NULL,'2026-11-30T13:25:54+08:00',1,'2026-11-30T13:25:54+08:00');
INSERT INTO "handoff_requests" VALUES(3,'buyer-wang','angry','投诉物流太慢','closed','2026-11-30T13:25:54+08:00',0,'','','{}',NULL,NULL,'2026-11-30T13:25:54+08:00','已补偿优惠券',0,NULL,NULL,0,'2026-11-30T13:25:54+08:00');
CREATE TABLE lead_activity (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  message_id TEXT NOT NULL DEFAULT '',
  intent TEXT NOT NULL DEFAULT '',
  signals TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL DEFAULT '',
  at TEXT NOT NULL
);
INSERT INTO "lead_activity" VALUES(1,'buyer-zhao','m-1','ask_wholesale','wholesale','这款T恤批发100件什么价？我的电话13812345678','2026-05-20T10:00:00+08:00');
INSERT INTO "lead_activity" VALUES(2,'buyer-zhao','m-2','','','微信也可以 zhao_wx88','2026-05-20T10:03:00+08:00');
CREATE TABLE lead_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
INSERT INTO "lead_audit" VALUES(1,'2026-11-30T13:25:55+08:00','admin','export','{"count": 1}');
CREATE TABLE lead_contacts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lead_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  value TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  message_id TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT 'message',
  created_at TEXT NOT NULL,
  UNIQUE (kind, value)
);
INSERT INTO "lead_contacts" VALUES(1,1,'phone','13812345678','buyer-zhao','m-1','13812345678','2026-05-20T10:00:00+08:00');
INSERT INTO "lead_contacts" VALUES(2,1,'wechat','zhao_wx88','buyer-zhao','m-2','zhao_wx88','2026-05-20T10:03:00+08:00');
CREATE TABLE lead_kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "lead_kv" VALUES('last_rescore','2026-05-20T10:00:00+08:00');
CREATE TABLE lead_notes (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  lead_id INTEGER NOT NULL,
  author TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL DEFAULT '',
  at TEXT NOT NULL
);
INSERT INTO "lead_notes" VALUES(1,1,'xiaomei','','客户要100件，报价中','2026-11-30T13:25:55+08:00');
INSERT INTO "lead_notes" VALUES(2,1,'admin','','分配给客服 #2','2026-11-30T13:25:55+08:00');
INSERT INTO "lead_notes" VALUES(3,1,'xiaomei','contacted','已电话联系','2026-11-30T13:25:55+08:00');
CREATE TABLE lead_senders (
  sender_id TEXT PRIMARY KEY,
  lead_id INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
INSERT INTO "lead_senders" VALUES('buyer-zhao',1,'2026-05-20T10:00:00+08:00');
CREATE TABLE leads (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL DEFAULT '',
  category TEXT NOT NULL DEFAULT 'purchase',
  score TEXT NOT NULL DEFAULT 'cold',
  points REAL NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'new',
  assignee_id INTEGER,
  source_sender_id TEXT NOT NULL,
  source_channel TEXT NOT NULL DEFAULT '',
  source_message_id TEXT NOT NULL DEFAULT '',
  source_message TEXT NOT NULL DEFAULT '',
  has_lead_card INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  last_activity_at TEXT NOT NULL,
  merged_into INTEGER
);
INSERT INTO "leads" VALUES(1,'赵先生','wholesale','cold',3.0,'contacted',2,'buyer-zhao','douyin','m-1','这款T恤批发100件什么价？我的电话13812345678',0,'2026-05-20T10:00:00+08:00','2026-11-30T13:25:55+08:00','2026-05-20T10:03:00+08:00',NULL);
CREATE TABLE notifications (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  buyer_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  order_id TEXT,
  text TEXT NOT NULL,
  created_at TEXT NOT NULL,
  sent_at TEXT,
  dedupe_key TEXT UNIQUE
);
INSERT INTO "notifications" VALUES(1,'B1001','shipped','DY20260518001','您的订单已发货：中通快递 7312345678','2026-11-30T13:25:54+08:00','2026-11-30T13:25:54+08:00','ship:DY20260518001');
INSERT INTO "notifications" VALUES(2,'B1002','refund','DY20260517002','您的退款已到账 ¥129.00','2026-11-30T13:25:54+08:00',NULL,'refund:DY20260517002');
CREATE TABLE offered_buttons (
  sender_id TEXT PRIMARY KEY,
  buttons_json TEXT NOT NULL,
  offered_at REAL NOT NULL
);
INSERT INTO "offered_buttons" VALUES('buyer-zhang','[{"title": "DY20260518001 T恤", "payload": "/select_order{\"order_id\":\"DY20260518001\"}"}, {"title": "DY20260517002 卫衣", "payload": "/select_order{\"order_id\":\"DY20260517002\"}"}]',1.79601635461104607582e+09);
CREATE TABLE order_checks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  order_id TEXT NOT NULL,
  kind TEXT NOT NULL,              -- lookup | verified | verify_failed
  at REAL NOT NULL
);
INSERT INTO "order_checks" VALUES(1,'buyer-zhang','DY20260518001','lookup',1.79601635475839233394e+09);
INSERT INTO "order_checks" VALUES(2,'buyer-zhang','DY20260518001','verified',1.79601635476470112805e+09);
INSERT INTO "order_checks" VALUES(3,'buyer-li','DY20260517002','verify_failed',1.79601635476913404462e+09);
CREATE TABLE queue_notices (
  sender_id TEXT PRIMARY KEY,
  told_at REAL NOT NULL
);
INSERT INTO "queue_notices" VALUES('buyer-li',1779242400.0);
CREATE TABLE rest_inbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient_id TEXT NOT NULL,
  message_json TEXT NOT NULL,
  created_at TEXT NOT NULL
);
INSERT INTO "rest_inbox" VALUES(1,'buyer-zhang','{"text": "客服小美为您服务，请稍等。"}','2026-11-30T13:25:54+08:00');
INSERT INTO "rest_inbox" VALUES(2,'buyer-zhang','{"text": "已为您催促仓库发货。", "buttons": []}','2026-11-30T13:25:54+08:00');
CREATE TABLE rest_inbox_tokens (
  recipient_id TEXT PRIMARY KEY,
  token_sha256 TEXT NOT NULL,
  created_at TEXT NOT NULL
);
INSERT INTO "rest_inbox_tokens" VALUES('buyer-zhang','a49d4e1db5dae98403d7c81eea0706c60cb18f5bbdf4cb9e6870ebb614ea8ac0','2026-11-30T13:25:54+08:00');
CREATE TABLE urge_requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  order_id TEXT NOT NULL,
  overdue_hours REAL NOT NULL,
  created_at TEXT NOT NULL
, buyer_id TEXT NOT NULL DEFAULT '');
INSERT INTO "urge_requests" VALUES(1,'buyer-zhang','DY20260518001',30.5,'2026-11-30T13:25:54+08:00','B1001');
INSERT INTO "urge_requests" VALUES(2,'buyer-li','DY20260517002',50.0,'2026-11-30T13:25:54+08:00','');
CREATE INDEX handoff_by_status ON handoff_requests (status, created_at);
CREATE INDEX handoff_by_sender ON handoff_requests (sender_id, status);
CREATE INDEX urges_by_order ON urge_requests (order_id);
CREATE INDEX rest_inbox_by_recipient ON rest_inbox (recipient_id, id);
CREATE INDEX notifications_pending ON notifications (sent_at, id);
CREATE INDEX order_checks_by_sender ON order_checks (sender_id, kind, at);
CREATE INDEX order_checks_by_order ON order_checks (order_id, kind, at);
CREATE INDEX doudian_push_unprocessed ON doudian_push_seen (processed_at);
CREATE INDEX leads_list ON leads (merged_into, created_at);
CREATE INDEX lead_contacts_lead ON lead_contacts (lead_id);
CREATE INDEX lead_senders_lead ON lead_senders (lead_id);
CREATE INDEX lead_activity_sender ON lead_activity (sender_id, at);
CREATE INDEX crm_outbox_due ON crm_outbox (delivered_at, next_attempt_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('agents',2);
INSERT INTO "sqlite_sequence" VALUES('handoff_requests',3);
INSERT INTO "sqlite_sequence" VALUES('urge_requests',2);
INSERT INTO "sqlite_sequence" VALUES('rest_inbox',2);
INSERT INTO "sqlite_sequence" VALUES('notifications',2);
INSERT INTO "sqlite_sequence" VALUES('order_checks',3);
INSERT INTO "sqlite_sequence" VALUES('lead_activity',2);
INSERT INTO "sqlite_sequence" VALUES('leads',1);
INSERT INTO "sqlite_sequence" VALUES('lead_contacts',2);
INSERT INTO "sqlite_sequence" VALUES('lead_notes',3);
INSERT INTO "sqlite_sequence" VALUES('lead_audit',1);
INSERT INTO "sqlite_sequence" VALUES('crm_outbox',1);
COMMIT;
