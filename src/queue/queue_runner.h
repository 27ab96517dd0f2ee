/* The queue runner (DESIGN.md): schedules outbound deliveries on one loop.
 *
 * It wakes at start, when the pipeline has queued remote recipients
 * (queue_runner_kick), and at the next entry's next_attempt (polling at
 * least every QUEUE_RUNNER_POLL seconds for changes made by the admin).
 * It takes the due entries (store_queue_due), groups them by recipient
 * domain and sender domain (the sender's domain may have its own source
 * address and EHLO name: multihoming), finds each group's route
 * (delivery.routes, else delivery.relayhost, else the domain's MX), and
 * runs one SMTP client session per group within delivery.max_connections
 * and delivery.max_connections_per_domain.  Each session ends in one store
 * write (store_queue_record) with its outcomes and trace events; bounces,
 * delay warnings and "relayed" notices go to the sender through the
 * pipeline (pipeline_submit_report).  docs/queue.md has the policy. */
#ifndef KEEL_QUEUE_QUEUE_RUNNER_H
#define KEEL_QUEUE_QUEUE_RUNNER_H

struct loop;
struct pipeline;
struct queue_runner;
struct store;

#define QUEUE_RUNNER_POLL 10

/* Creates the runner for loop (whose data is its store reader); nothing
 * runs until queue_runner_start.  Any thread. */
struct queue_runner *queue_runner_new(struct store *store, struct pipeline *pipeline,
				      struct loop *loop, const char *hostname);
/* On the runner's loop: creates its resolver and TLS context and scans. */
void queue_runner_start(struct queue_runner *r);
/* Any thread, cheap: a scan soon (coalesced).  Fits pipeline_queued_cb. */
void queue_runner_kick(void *runner);
/* Any thread: the default EHLO name (a domain's ehlo_name wins). */
void queue_runner_set_hostname(struct queue_runner *r, const char *hostname);
/* On the runner's loop: drops every session (their entries stay due, as
 * they were), stops scanning and sets *r to NULL.  Memory is released once
 * the store writes in flight have answered (the worker quiesces the store
 * before stopping the loops). */
void queue_runner_stop(struct queue_runner **r);

#endif
