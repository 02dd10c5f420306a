BEGIN TRANSACTION;
CREATE TABLE douyin_conversations (
  sender_id TEXT PRIMARY KEY,
  conversation_short_id TEXT,
  last_msg_id TEXT,
  last_msg_at REAL,
  nickname TEXT,
  options TEXT,
  paused_until REAL,
  last_customer_at REAL,
  last_greeted_at REAL
);
INSERT INTO "douyin_conversations" VALUES('ou_buyer_zhang','cs-1','7001',1779242400.0,'张**',NULL,NULL,1779242400.0,NULL);
CREATE TABLE douyin_deliveries (
  msg_id TEXT PRIMARY KEY,
  event_key TEXT NOT NULL,
  received_at REAL NOT NULL
);
INSERT INTO "douyin_deliveries" VALUES('7001','smid:7001',1.79601635523495841025e+09);
INSERT INTO "douyin_deliveries" VALUES('7002','smid:7002',1.79601635527789378165e+09);
CREATE TABLE douyin_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_key TEXT NOT NULL UNIQUE,
  event TEXT NOT NULL,
  sender_id TEXT NOT NULL,
  create_time INTEGER NOT NULL DEFAULT 0,
  envelope TEXT NOT NULL,
  received_at REAL NOT NULL,
  claimed_at REAL,
  processed_at REAL,
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT
);
INSERT INTO "douyin_events" VALUES(1,'smid:7001','im_receive_msg','ou_buyer_zhang',1779242400,'{"event": "im_receive_msg", "from_user_id": "ou_buyer_zhang", "to_user_id": "ou_shop", "client_key": "awx-test", "content": {"server_message_id": "7001", "text": "在吗，我的订单发货了吗", "conversation_short_id": "cs-1"}, "log_id": "log-1"}',1.79601635523495841025e+09,1.79601635524524354931e+09,1.79601635525499749189e+09,0,NULL);
INSERT INTO "douyin_events" VALUES(2,'smid:7002','im_receive_msg','ou_buyer_li',1779242405,'{"event": "im_receive_msg", "from_user_id": "ou_buyer_li", "to_user_id": "ou_shop", "client_key": "awx-test", "content": {"server_message_id": "7002", "text": "退货地址是哪里"}, "log_id": "log-2"}',1.79601635527789378165e+09,NULL,NULL,0,NULL);
CREATE TABLE douyin_outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  body TEXT NOT NULL,
  preview TEXT NOT NULL,
  created_at REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL,
  last_error TEXT,
  sent_at REAL
);
INSERT INTO "douyin_outbox" VALUES(1,'ou_buyer_zhang','{"msg_type": 1, "content": {"text": "您的订单已发货"}}','您的订单已发货',1.79601635531103229516e+09,1,1779242460.0,'timeout',NULL);
CREATE TABLE douyin_sent (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  sender_id TEXT NOT NULL,
  msg_id TEXT,
  text_hash TEXT,
  sent_at REAL NOT NULL
);
INSERT INTO "douyin_sent" VALUES(1,'ou_buyer_zhang','8001','78627e093e4dd72f4dc50ae01b2c65226899f057',1.79601635532303357126e+09);
CREATE TABLE douyin_tokens (
  client_key TEXT PRIMARY KEY,
  access_token TEXT NOT NULL,
  refresh_token TEXT,
  expires_at REAL,
  refresh_expires_at REAL,
  updated_at REAL NOT NULL
);
INSERT INTO "douyin_tokens" VALUES('awx-test','act.demo-access','rft.demo-refresh',1779328800.0,1781834400.0,1.79601635533203530309e+09);
CREATE INDEX douyin_events_pending ON douyin_events (processed_at, sender_id);
CREATE INDEX douyin_outbox_pending ON douyin_outbox (sent_at, sender_id, id);
CREATE INDEX douyin_sent_by_sender ON douyin_sent (sender_id, sent_at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('douyin_events',2);
INSERT INTO "sqlite_sequence" VALUES('douyin_outbox',1);
INSERT INTO "sqlite_sequence" VALUES('douyin_sent',1);
COMMIT;
