/* The pause image's /pause: sleeps until SIGTERM or SIGINT ends it. */
#include <signal.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

int main(void) {
  signal(SIGTERM, stop);
  signal(SIGINT, stop);
  for (;;)
    pause();
}
