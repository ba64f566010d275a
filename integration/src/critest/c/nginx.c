/* Stand-in for nginx in critest's nginx images (registry.k8s.io/e2e-test-images/
 * nginx, gcr.io/k8s-staging-cri-tools/hostnet-nginx-*): a static HTTP server
 * answering 200 to every request on $NGINX_PORT (default 80). Like nginx's
 * master process it is named `nginx`, its command line reads
 * "nginx: master process ...", and it writes its pid to /var/run/nginx.pid. */
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SELF "/usr/sbin/nginx"
#define TITLE "nginx: master process nginx -g daemon off;"
#define PID_FILE "/var/run/nginx.pid"

static void stop(int sig) {
  (void)sig;
  unlink(PID_FILE);
  _exit(0);
}

int main(int argc, char **argv) {
  (void)argc;
  if (strstr(argv[0], "master process") == NULL) {
    /* Exec'd by path, so the process keeps the name nginx. */
    char *args[] = {TITLE, NULL};
    execv(SELF, args);
    perror("nginx: exec " SELF);
    return 1;
  }
  const char *p = getenv("NGINX_PORT");
  int port = p ? atoi(p) : 80;
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  signal(SIGQUIT, stop);
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0) {
    perror("nginx: listen");
    return 1;
  }
  FILE *f = fopen(PID_FILE, "w");
  if (f) {
    fprintf(f, "%d\n", getpid());
    fclose(f);
  }
  fprintf(stderr, "nginx: listening on port %d\n", port);
  static const char body[] = "<html><body>Welcome to nginx!</body></html>\n";
  char reply[256];
  int len = snprintf(reply, sizeof reply,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     sizeof body - 1, body);
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c < 0)
      continue;
    char buf[4096];
    if (read(c, buf, sizeof buf) > 0 && write(c, reply, len) < 0)
      perror("nginx: write");
    close(c);
  }
}
