"""Runs a single-node Swift for tests in one process: the account, container and object servers and the
proxy, each the stock WSGI app loaded from its own config file by Swift's own run_server(), served side by
side as eventlet green threads. The stock launchers (swift-*-server) take ~1.3 CPU-s each to import Swift and
load their app twice; four of them on a busy 2-core machine took 12 s to answer, this takes one import.

Builds the rings first when they are missing (what `swift-ring-builder <f> create 4 1 0`, `add`, `rebalance`
do, with the same library, in this process), after checking that the device directory takes user xattrs
(Swift keeps object metadata in them).

Usage: serve.py <swift_dir> <device_dir> <account_port> <container_port> <object_port>
"""
import os
import sys

NAMES = ('account', 'container', 'object')


def build_rings(swift_dir, device_dir, ports):
    from swift.common.ring import RingBuilder
    for name, port in zip(NAMES, ports):
        ring = os.path.join(swift_dir, name + '.ring.gz')
        if os.path.exists(ring):
            continue
        builder = RingBuilder(4, 1, 0)
        builder.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port,
                         'device': os.path.basename(device_dir), 'weight': 1, 'meta': ''})
        builder.rebalance()
        builder.save(os.path.join(swift_dir, name + '.builder'))
        builder.get_ring().save(ring + '.tmp')
        os.rename(ring + '.tmp', ring)


def main():
    swift_dir, device_dir = sys.argv[1], sys.argv[2]
    ports = [int(p) for p in sys.argv[3:6]]
    try:
        os.setxattr(device_dir, 'user.fluxo.probe', b'1')
    except OSError as e:
        sys.stderr.write('the file system of %s has no user xattrs (%s): Swift cannot store objects there; '
                         'point TMPDIR to one that has them\n' % (device_dir, e))
        sys.exit(3)
    from swift.common import utils, wsgi
    utils.eventlet_monkey_patch()
    import eventlet
    import eventlet.hubs
    # run_server() installs a fresh hub as it starts, which drops every socket and timer the hub had: fine for
    # one server per process, fatal for the second one here. A thread keeps the first hub it gets (tpool's
    # threads still get theirs).
    install_hub = eventlet.hubs.use_hub

    def use_hub_once(mod=None):
        if not hasattr(eventlet.hubs._threadlocal, 'hub'):
            install_hub(mod)

    # eventlet's listen() sets SO_REUSEPORT unless told not to: a second server restarted on a port another
    # test's server took meanwhile would then share it silently, each answering half the requests. Without
    # it, that bind fails (EADDRINUSE), get_socket() retries for bind_timeout, and the start fails loudly.
    listen = wsgi.listen
    wsgi.listen = lambda *args, **kwargs: listen(*args, reuse_port=False, **kwargs)
    install_hub(wsgi.get_hub())
    eventlet.hubs.use_hub = use_hub_once
    build_rings(swift_dir, device_dir, ports)
    threads = []
    for name in NAMES + ('proxy',):
        conf, logger, log_name = wsgi._initrp(os.path.join(swift_dir, name + '-server.conf'), name + '-server',
                                              verbose=True)
        sock = wsgi.get_socket(conf)
        threads.append(eventlet.spawn(wsgi.run_server, conf, logger, sock, global_conf={'log_name': log_name}))
    # The sockets listen already; each app loads in its green thread, then serves (the caller polls
    # /healthcheck of each). A server that fails to load ends the process, so the caller sees why.
    for t in threads:
        t.link(exit_with)
    for t in threads:
        t.wait()


def exit_with(thread):
    try:
        thread.wait()
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


main()
