/*
 * A Kafka-protocol test broker for Fluxo's tests: librdkafka's mock cluster
 * (Debian librdkafka-dev, rdkafka_mock.h) driven over stdin.
 *
 * usage: kafka-mock <brokers>
 * stdout: first line "bootstrap <host:port,...>", then one "ok" or
 *         "error <reason>" line per command.
 * stdin commands (one per line):
 *   create_topic <name> <partitions> <replication_factor>
 *   leader <topic> <partition> <broker_id>
 *   push_errors <api_key> <count> <errcode>...   (cluster-wide error stack)
 *   clear_errors <api_key>
 *   broker_down <id> | broker_up <id>
 *   coordinator group <group_id> <broker_id>
 *   apiversion <api_key> <min> <max>   (what the brokers advertise)
 *   dump <topic>   every message the brokers hold, read with librdkafka's own
 *                  consumer (independent of the client under test), one line
 *                  each: "msg <partition> <offset> <key-hex|-> <value-hex|->
 *                  [<header-name>=<value-hex>...]", then "ok <count>"
 *   produce <topic> <codec> <from> <count>   produces {"n":<from>}.. with
 *                  librdkafka's own producer (compression.codec <codec>:
 *                  none, gzip, snappy, lz4, zstd), round-robin over the
 *                  partitions, then "ok <count>" once every one is acked
 *   ping
 * Exits on stdin EOF (the test runner closing the pipe or dying).
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS 64

static void print_hex(const void *p, size_t n) {
  const unsigned char *b = p;
  if (!p) {
    fputc('-', stdout);
    return;
  }
  for (size_t i = 0; i < n; i++) printf("%02x", b[i]);
  if (n == 0) fputc('-', stdout); /* an empty value reads back as "-" too */
}

static void dump_topic(rd_kafka_mock_cluster_t *mc, const char *topic) {
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers",
                    rd_kafka_mock_cluster_bootstraps(mc), errstr,
                    sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", "fluxo-test-dump", errstr,
                    sizeof(errstr));
  rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr,
                    sizeof(errstr));
  rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr,
                    sizeof(errstr));
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  /* An empty fetch answers at once instead of after the default 500 ms. */
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "5", errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "fetch.error.backoff.ms", "5", errstr, sizeof(errstr));
  rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (!c) {
    printf("error %s\n", errstr);
    fflush(stdout);
    return;
  }
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(c, topic, NULL);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_resp_err_t err = rd_kafka_metadata(c, 0, rkt, &md, 5000);
  if (err || md->topic_cnt != 1 || md->topics[0].err) {
    printf("error metadata %s\n",
           rd_kafka_err2name(err ? err : md ? md->topics[0].err : err));
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(c);
    fflush(stdout);
    return;
  }
  int partitions = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; p++)
    rd_kafka_topic_partition_list_add(parts, topic, p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_assign(c, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  int at_eof = 0, count = 0, idle = 0;
  while (at_eof < partitions && idle < 100) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
    if (!m) {
      idle++;
      continue;
    }
    idle = 0;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      at_eof++;
    } else if (m->err) {
      printf("warn %s\n", rd_kafka_message_errstr(m));
    } else {
      printf("msg %d %lld ", m->partition, (long long)m->offset);
      print_hex(m->key, m->key_len);
      fputc(' ', stdout);
      print_hex(m->payload, m->len);
      rd_kafka_headers_t *hdrs = NULL;
      if (!rd_kafka_message_headers(m, &hdrs)) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &size);
             i++) {
          printf(" %s=", name);
          print_hex(val, size);
        }
      }
      fputc('\n', stdout);
      count++;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  if (at_eof < partitions)
    printf("error timeout reading %s\n", topic);
  else
    printf("ok %d\n", count);
  fflush(stdout);
}

static int produce_errors;
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
  (void)rk;
  (void)opaque;
  if (m->err) {
    produce_errors++;
    printf("warn %s\n", rd_kafka_err2str(m->err));
  }
}

static void produce(rd_kafka_mock_cluster_t *mc, const char *topic,
                    const char *codec, long from, long count) {
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers",
                    rd_kafka_mock_cluster_bootstraps(mc), errstr,
                    sizeof(errstr));
  if (rd_kafka_conf_set(conf, "compression.codec", codec, errstr,
                        sizeof(errstr)) != RD_KAFKA_CONF_OK) {
    printf("error %s\n", errstr);
    fflush(stdout);
    rd_kafka_conf_destroy(conf);
    return;
  }
  /* Batches of many records, so that each is compressed as a whole. */
  rd_kafka_conf_set(conf, "linger.ms", "20", errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!p) {
    printf("error %s\n", errstr);
    fflush(stdout);
    return;
  }
  produce_errors = 0;
  char value[64];
  for (long n = from; n < from + count; n++) {
    int len = snprintf(value, sizeof(value), "{\"n\":%ld}", n);
    rd_kafka_resp_err_t err;
    while ((err = rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic),
                                    RD_KAFKA_V_VALUE(value, (size_t)len),
                                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                    RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    if (err) {
      printf("error %s\n", rd_kafka_err2name(err));
      fflush(stdout);
      rd_kafka_destroy(p);
      return;
    }
  }
  rd_kafka_resp_err_t flushed = rd_kafka_flush(p, 30000);
  rd_kafka_destroy(p);
  if (flushed || produce_errors)
    printf("error produce %s, %d failed\n", rd_kafka_err2name(flushed),
           produce_errors);
  else
    printf("ok %ld\n", count);
  fflush(stdout);
}

static void answer(const char *fmt, const char *detail) {
  if (detail)
    printf(fmt, detail);
  else
    fputs(fmt, stdout);
  fflush(stdout);
}

static void answer_err(rd_kafka_resp_err_t err) {
  if (err)
    answer("error %s\n", rd_kafka_err2name(err));
  else
    answer("ok\n", NULL);
}

static void run_command(rd_kafka_mock_cluster_t *mc, char *line) {
  char *argv[MAX_ERRORS + 4];
  int argc = 0;
  for (char *tok = strtok(line, " \t\r\n"); tok && argc < MAX_ERRORS + 4;
       tok = strtok(NULL, " \t\r\n"))
    argv[argc++] = tok;
  if (argc == 0) return;
  const char *cmd = argv[0];

  if (!strcmp(cmd, "dump") && argc == 2) {
    dump_topic(mc, argv[1]);
  } else if (!strcmp(cmd, "produce") && argc == 5) {
    produce(mc, argv[1], argv[2], atol(argv[3]), atol(argv[4]));
  } else if (!strcmp(cmd, "ping")) {
    answer("ok\n", NULL);
  } else if (!strcmp(cmd, "create_topic") && argc == 4) {
    answer_err(rd_kafka_mock_topic_create(mc, argv[1], atoi(argv[2]),
                                          atoi(argv[3])));
  } else if (!strcmp(cmd, "leader") && argc == 4) {
    answer_err(rd_kafka_mock_partition_set_leader(mc, argv[1], atoi(argv[2]),
                                                  atoi(argv[3])));
  } else if (!strcmp(cmd, "push_errors") && argc >= 4) {
    int count = atoi(argv[2]);
    int given = argc - 3;
    rd_kafka_resp_err_t errs[MAX_ERRORS];
    if (count <= 0 || count > MAX_ERRORS) {
      answer("error count must be 1..64\n", NULL);
      return;
    }
    /* Fewer codes than count: the last one repeats, so "push_errors 0 5 6"
     * means five NOT_LEADER_OR_FOLLOWER answers. */
    for (int i = 0; i < count; i++)
      errs[i] = (rd_kafka_resp_err_t)atoi(argv[3 + (i < given ? i : given - 1)]);
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)atoi(argv[1]),
                                            (size_t)count, errs);
    answer("ok\n", NULL);
  } else if (!strcmp(cmd, "clear_errors") && argc == 2) {
    rd_kafka_mock_clear_request_errors(mc, (int16_t)atoi(argv[1]));
    answer("ok\n", NULL);
  } else if (!strcmp(cmd, "broker_down") && argc == 2) {
    answer_err(rd_kafka_mock_broker_set_down(mc, atoi(argv[1])));
  } else if (!strcmp(cmd, "broker_up") && argc == 2) {
    answer_err(rd_kafka_mock_broker_set_up(mc, atoi(argv[1])));
  } else if (!strcmp(cmd, "apiversion") && argc == 4) {
    answer_err(rd_kafka_mock_set_apiversion(mc, (int16_t)atoi(argv[1]),
                                            (int16_t)atoi(argv[2]),
                                            (int16_t)atoi(argv[3])));
  } else if (!strcmp(cmd, "coordinator") && argc == 4) {
    answer_err(
        rd_kafka_mock_coordinator_set(mc, argv[1], argv[2], atoi(argv[3])));
  } else {
    answer("error unknown command or wrong arguments: %s\n", cmd);
  }
}

int main(int argc, char **argv) {
  int brokers = argc > 1 ? atoi(argv[1]) : 1;
  char errstr[512];
  if (brokers < 1) brokers = 1;

  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  /* The handle only hosts the mock cluster; keep its own logging quiet. */
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
  rd_kafka_t *rk =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!rk) {
    fprintf(stderr, "rd_kafka_new: %s\n", errstr);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fprintf(stderr, "rd_kafka_mock_cluster_new failed\n");
    return 1;
  }
  printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);

  char line[8192];
  while (fgets(line, sizeof(line), stdin)) run_command(mc, line);

  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
