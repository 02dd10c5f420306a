BEGIN TRANSACTION;
CREATE TABLE after_sales (
  case_id TEXT PRIMARY KEY, order_id TEXT NOT NULL, case_type TEXT NOT NULL,
  status TEXT NOT NULL, status_words TEXT NOT NULL, amount_fen INTEGER NOT NULL,
  opened_at TEXT NOT NULL, reason TEXT NOT NULL, expected TEXT NOT NULL);
INSERT INTO "after_sales" VALUES('AS20261101','6938271045123400003','return_refund','refunding','退款处理中：退货已于05月19日入库',3990,'2026-05-18T10:00:00+08:00','质量问题：一个杯子有裂痕','预计1-3个工作日内退回原支付账户');
CREATE TABLE buyers (buyer_id TEXT PRIMARY KEY, is_returning INTEGER NOT NULL);
INSERT INTO "buyers" VALUES('buyer_demo_001',1);
INSERT INTO "buyers" VALUES('buyer_demo_002',0);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('seeded_at','2026-05-20T10:00:00+08:00');
CREATE TABLE order_items (
  order_id TEXT NOT NULL REFERENCES orders, seq INTEGER NOT NULL, product_id TEXT NOT NULL,
  color TEXT, size TEXT, quantity INTEGER NOT NULL, unit_price_fen INTEGER NOT NULL,
  PRIMARY KEY (order_id, seq));
INSERT INTO "order_items" VALUES('6938271045123400001',0,'P1001','白色','L',1,8900);
INSERT INTO "order_items" VALUES('6938271045123400002',0,'P1002','黑色','42',1,29900);
INSERT INTO "order_items" VALUES('6938271045123400003',0,'P1003','白色',NULL,2,3990);
INSERT INTO "order_items" VALUES('6938271045123400004',0,'P1004','黄色','110',1,6900);
INSERT INTO "order_items" VALUES('6938271045123400005',0,'P1001','黑色','XL',1,8900);
INSERT INTO "order_items" VALUES('6938271045123400006',0,'P1001','灰色','XL',1,8900);
INSERT INTO "order_items" VALUES('6938271045123400007',0,'P1002','白色','41',1,29900);
INSERT INTO "order_items" VALUES('6938271045123400008',0,'P1003','白色',NULL,1,3990);
INSERT INTO "order_items" VALUES('6938271045123400009',0,'P1001','白色','M',1,8900);
CREATE TABLE orders (
  order_id TEXT PRIMARY KEY, buyer_id TEXT NOT NULL, status TEXT NOT NULL,
  total_fen INTEGER NOT NULL, created_at TEXT NOT NULL, paid_at TEXT, shipped_at TEXT,
  delivered_at TEXT, courier TEXT, tracking_no TEXT,
  recipient_name TEXT, recipient_phone TEXT, recipient_address TEXT);
INSERT INTO "orders" VALUES('6938271045123400001','buyer_demo_001','paid',8900,'2026-05-17T10:00:00+08:00','2026-05-17T10:00:00+08:00',NULL,NULL,NULL,NULL,'李四','13900001111','浙江省杭州市西湖区文三路90号');
INSERT INTO "orders" VALUES('6938271045123400002','buyer_demo_001','shipped',29900,'2026-05-17T10:00:00+08:00','2026-05-17T10:00:00+08:00','2026-05-18T10:00:00+08:00',NULL,'顺丰速运','SF1234567890123','张三','13800000000','广东省广州市天河区体育西路100号');
INSERT INTO "orders" VALUES('6938271045123400003','buyer_demo_001','delivered',7980,'2026-05-13T10:00:00+08:00','2026-05-13T10:00:00+08:00','2026-05-14T10:00:00+08:00','2026-05-17T10:00:00+08:00','中通快递','75312345678901','张三','13800000000','广东省广州市天河区体育西路100号');
INSERT INTO "orders" VALUES('6938271045123400004','buyer_demo_001','unpaid',6900,'2026-05-20T09:00:00+08:00',NULL,NULL,NULL,NULL,NULL,'张三','13800000000','广东省广州市天河区体育西路100号');
INSERT INTO "orders" VALUES('6938271045123400005','buyer_demo_001','completed',8900,'2026-04-05T10:00:00+08:00','2026-04-05T10:00:00+08:00','2026-04-06T10:00:00+08:00','2026-04-10T10:00:00+08:00','圆通速递','YT1111222233334','张三','13800000000','广东省广州市天河区体育西路100号');
INSERT INTO "orders" VALUES('6938271045123400006','buyer_demo_002','shipped',8900,'2026-05-18T10:00:00+08:00','2026-05-18T10:00:00+08:00','2026-05-19T10:00:00+08:00',NULL,'圆通速递','YT9876543210987','李四','13900000000','广东省广州市白云区机场路200号');
INSERT INTO "orders" VALUES('6938271045123400007','buyer_demo_001','delivered',29900,'2026-05-15T10:00:00+08:00','2026-05-15T10:00:00+08:00','2026-05-16T10:00:00+08:00','2026-05-18T10:00:00+08:00','中通快递','75300000000007','张三','13800000000','广东省广州市天河区体育西路100号');
INSERT INTO "orders" VALUES('6938271045123400008','buyer_demo_002','delivered',3990,'2026-05-16T10:00:00+08:00','2026-05-16T10:00:00+08:00','2026-05-17T10:00:00+08:00','2026-05-19T10:00:00+08:00','圆通速递','YT5555666677778','李四','13900000000','广东省广州市白云区机场路200号');
INSERT INTO "orders" VALUES('6938271045123400009','buyer_demo_002','delivered',8900,'2026-05-16T10:00:00+08:00','2026-05-16T10:00:00+08:00','2026-05-17T10:00:00+08:00','2026-05-19T10:00:00+08:00','中通快递','75300000000009','李四','13900000000','广东省广州市白云区机场路200号');
CREATE TABLE product_traits (
  product_id TEXT NOT NULL REFERENCES products, trait TEXT NOT NULL, answer TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT '', PRIMARY KEY (product_id, trait));
INSERT INTO "product_traits" VALUES('P1001','pure_cotton','yes','面料是100%棉');
INSERT INTO "product_traits" VALUES('P1001','machine_washable','yes','可以机洗，建议翻面冷水洗');
INSERT INTO "product_traits" VALUES('P1001','waterproof','no','纯棉面料，不防水');
INSERT INTO "product_traits" VALUES('P1002','breathable','yes','透气网面鞋面');
INSERT INTO "product_traits" VALUES('P1002','waterproof','no','网面透气款，不防水');
INSERT INTO "product_traits" VALUES('P1003','dishwasher_safe','yes','陶瓷材质，可以放洗碗机清洗');
INSERT INTO "product_traits" VALUES('P1004','waterproof','yes','防水PU面料');
INSERT INTO "product_traits" VALUES('P1004','pure_cotton','no','面料是防水PU');
CREATE TABLE products (
  product_id TEXT PRIMARY KEY, name TEXT NOT NULL, price_fen INTEGER NOT NULL,
  category TEXT NOT NULL, attributes TEXT NOT NULL, fit_note TEXT, synonyms TEXT NOT NULL);
INSERT INTO "products" VALUES('P1001','纯棉短袖T恤',8900,'服装','{"面料": "100%棉", "洗涤": "可机洗", "版型": "常规款，略偏小"}','版型略偏小，两个尺码之间建议选大一码','["T恤", "短袖", "短袖T恤", "纯棉T恤", "体恤", "半袖"]');
INSERT INTO "products" VALUES('P1002','男士轻量跑步鞋',29900,'鞋靴','{"鞋面": "透气网面", "鞋底": "橡胶底", "尺码": "标准码，按平时尺码选"}','尺码标准，按平时穿的码数选即可','["跑步鞋", "跑鞋", "运动鞋", "鞋子"]');
INSERT INTO "products" VALUES('P1003','陶瓷马克杯',3990,'家居','{"材质": "陶瓷", "容量": "350ml", "清洗": "可用洗碗机"}',NULL,'["马克杯", "杯子", "陶瓷杯", "水杯"]');
INSERT INTO "products" VALUES('P1004','儿童防水雨衣',6900,'童装','{"面料": "防水PU", "适合年龄": "3-8岁"}','按孩子身高选码','["雨衣", "儿童雨衣", "雨披"]');
CREATE TABLE size_charts (
  product_id TEXT NOT NULL REFERENCES products, seq INTEGER NOT NULL, size TEXT NOT NULL,
  height_min REAL NOT NULL, height_max REAL NOT NULL, weight_min REAL, weight_max REAL,
  PRIMARY KEY (product_id, seq));
INSERT INTO "size_charts" VALUES('P1001',0,'S',155.0,160.0,40.0,50.0);
INSERT INTO "size_charts" VALUES('P1001',1,'M',160.0,167.0,50.0,57.5);
INSERT INTO "size_charts" VALUES('P1001',2,'L',167.0,173.0,57.5,65.0);
INSERT INTO "size_charts" VALUES('P1001',3,'XL',173.0,178.0,65.0,75.0);
INSERT INTO "size_charts" VALUES('P1001',4,'XXL',178.0,185.0,75.0,85.0);
INSERT INTO "size_charts" VALUES('P1004',0,'100',90.0,100.0,NULL,NULL);
INSERT INTO "size_charts" VALUES('P1004',1,'110',100.0,110.0,NULL,NULL);
INSERT INTO "size_charts" VALUES('P1004',2,'120',110.0,120.0,NULL,NULL);
INSERT INTO "size_charts" VALUES('P1004',3,'130',120.0,130.0,NULL,NULL);
CREATE TABLE traces (
  tracking_no TEXT NOT NULL, time TEXT NOT NULL, text TEXT NOT NULL);
INSERT INTO "traces" VALUES('SF1234567890123','2026-05-18T10:00:00+08:00','【杭州余杭营业部】已揽收');
INSERT INTO "traces" VALUES('SF1234567890123','2026-05-18T19:36:00+08:00','【杭州转运中心】已到达');
INSERT INTO "traces" VALUES('SF1234567890123','2026-05-19T10:00:00+08:00','【杭州转运中心】已发出，下一站【广州转运中心】');
INSERT INTO "traces" VALUES('75312345678901','2026-05-14T10:00:00+08:00','【杭州】已揽收');
INSERT INTO "traces" VALUES('75312345678901','2026-05-16T10:00:00+08:00','【广州天河区】派送中');
INSERT INTO "traces" VALUES('75312345678901','2026-05-17T10:00:00+08:00','【广州天河区】已签收，签收人：本人');
INSERT INTO "traces" VALUES('YT1111222233334','2026-04-06T10:00:00+08:00','【杭州】已揽收');
INSERT INTO "traces" VALUES('YT1111222233334','2026-04-10T10:00:00+08:00','【广州天河区】已签收，签收人：本人');
INSERT INTO "traces" VALUES('YT9876543210987','2026-05-19T10:00:00+08:00','【杭州】已揽收');
INSERT INTO "traces" VALUES('YT9876543210987','2026-05-20T08:00:00+08:00','【广州白云区】派送中');
INSERT INTO "traces" VALUES('75300000000007','2026-05-16T10:00:00+08:00','【杭州】已揽收');
INSERT INTO "traces" VALUES('75300000000007','2026-05-18T10:00:00+08:00','【广州天河区】已签收，签收人：本人');
INSERT INTO "traces" VALUES('YT5555666677778','2026-05-17T10:00:00+08:00','【杭州】已揽收');
INSERT INTO "traces" VALUES('YT5555666677778','2026-05-19T10:00:00+08:00','【广州白云区】已签收，签收人：本人');
INSERT INTO "traces" VALUES('75300000000009','2026-05-17T10:00:00+08:00','【杭州】已揽收');
INSERT INTO "traces" VALUES('75300000000009','2026-05-19T10:00:00+08:00','【广州白云区】已签收，签收人：本人');
CREATE TABLE variants (
  product_id TEXT NOT NULL REFERENCES products, color TEXT NOT NULL, size TEXT,
  stock INTEGER NOT NULL, restock_at TEXT, UNIQUE (product_id, color, size));
INSERT INTO "variants" VALUES('P1001','白色','S',30,NULL);
INSERT INTO "variants" VALUES('P1001','白色','M',30,NULL);
INSERT INTO "variants" VALUES('P1001','白色','L',30,NULL);
INSERT INTO "variants" VALUES('P1001','白色','XL',30,NULL);
INSERT INTO "variants" VALUES('P1001','白色','XXL',30,NULL);
INSERT INTO "variants" VALUES('P1001','黑色','M',0,'2026-05-30T10:00:00+08:00');
INSERT INTO "variants" VALUES('P1001','黑色','L',12,NULL);
INSERT INTO "variants" VALUES('P1001','黑色','XL',12,NULL);
INSERT INTO "variants" VALUES('P1001','灰色','L',8,NULL);
INSERT INTO "variants" VALUES('P1001','灰色','XL',8,NULL);
INSERT INTO "variants" VALUES('P1002','黑色','39',10,NULL);
INSERT INTO "variants" VALUES('P1002','黑色','40',10,NULL);
INSERT INTO "variants" VALUES('P1002','黑色','41',10,NULL);
INSERT INTO "variants" VALUES('P1002','黑色','42',10,NULL);
INSERT INTO "variants" VALUES('P1002','黑色','43',10,NULL);
INSERT INTO "variants" VALUES('P1002','黑色','44',10,NULL);
INSERT INTO "variants" VALUES('P1002','白色','40',5,NULL);
INSERT INTO "variants" VALUES('P1002','白色','41',5,NULL);
INSERT INTO "variants" VALUES('P1002','白色','42',5,NULL);
INSERT INTO "variants" VALUES('P1002','白色','43',5,NULL);
INSERT INTO "variants" VALUES('P1003','白色',NULL,200,NULL);
INSERT INTO "variants" VALUES('P1004','黄色','100',20,NULL);
INSERT INTO "variants" VALUES('P1004','黄色','110',20,NULL);
INSERT INTO "variants" VALUES('P1004','黄色','120',20,NULL);
INSERT INTO "variants" VALUES('P1004','黄色','130',20,NULL);
INSERT INTO "variants" VALUES('P1004','蓝色','110',0,NULL);
INSERT INTO "variants" VALUES('P1004','蓝色','120',0,NULL);
CREATE INDEX orders_by_buyer ON orders (buyer_id, created_at);
COMMIT;
