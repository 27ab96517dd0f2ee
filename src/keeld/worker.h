/* The worker process: everything but binding sockets and reading key files.
 * Started by the master as `keeld --worker` with the IPC socket on fd 3;
 * never runs as root. */
#ifndef KEEL_KEELD_WORKER_H
#define KEEL_KEELD_WORKER_H

#define WORKER_IPC_FD 3

/* Returns the process exit status. */
int worker_main(void);

#endif
