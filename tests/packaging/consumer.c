/* consumer.c - the smallest program linked against an installed or
 * subproject ipckit: one message through an ipc_pair. Used by check.sh. */
#include <ipckit.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	ipc_chan *a, *b;
	char buf[16];
	int r = ipc_pair("unix", &a, &b, NULL);

	if (r < 0 || (r = ipc_send(a, "ping", 4, 5000)) < 0 ||
	    (r = (int)ipc_recv(b, buf, sizeof(buf), 5000)) != 4 || memcmp(buf, "ping", 4) != 0) {
		fprintf(stderr, "consumer: %s\n", ipc_strerror(r < 0 ? r : -1));
		return 1;
	}
	ipc_close(a);
	ipc_close(b);
	printf("ipckit %s works\n", ipc_version());
	return 0;
}
