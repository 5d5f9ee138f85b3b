package io.kubetrain.hdfs;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * A one-NameNode, one-DataNode HDFS for tests: real RPC, real block transfer, WebHDFS.
 *
 * <p>Protocol (so a test harness in any language can drive it): the ready line {@code MINIHDFS
 * READY rpc=<port> http=<port> datanode=<port>} goes to stdout once clients can read and write.
 * Each stdin line is a command ({@code stop-namenode}, {@code start-namenode}) answered by
 * {@code MINIHDFS OK <command>} or {@code MINIHDFS ERROR <command> <message>}. Closing stdin or
 * SIGTERM shuts the cluster down and deletes its data, so a harness that dies without cleaning up
 * still takes the cluster with it.
 *
 * <p>Daemons listen on {@code --bind-host} (default all interfaces) and the DataNode advertises
 * {@code --datanode-host}, so clients in other network namespaces can reach it when their config
 * sets {@code dfs.client.use.datanode.hostname=true}.
 */
public final class MiniHdfs {
  private static final String PREFIX = "MINIHDFS ";

  private final MiniDFSCluster cluster;
  private boolean closed;

  private MiniHdfs(MiniDFSCluster cluster) {
    this.cluster = cluster;
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> opts = parse(args);
    File baseDir = new File(require(opts, "base-dir"));
    String bindHost = opts.getOrDefault("bind-host", "0.0.0.0");
    String dataNodeHost = opts.getOrDefault("datanode-host", "127.0.0.1");
    int rpcPort = Integer.parseInt(opts.getOrDefault("rpc-port", "0"));
    int httpPort = Integer.parseInt(opts.getOrDefault("http-port", "0"));

    Configuration conf = configuration(bindHost, dataNodeHost);
    MiniDFSCluster cluster =
        new MiniDFSCluster.Builder(conf, baseDir)
            .nameNodePort(rpcPort)
            .nameNodeHttpPort(httpPort)
            .numDataNodes(1)
            // Keep our bind addresses and advertised DataNode host instead of 127.0.0.1.
            .checkDataNodeAddrConfig(true)
            .checkDataNodeHostConfig(true)
            .format(true)
            .build();
    cluster.waitActive();

    MiniHdfs hdfs = new MiniHdfs(cluster);
    Runtime.getRuntime().addShutdownHook(new Thread(hdfs::close, "minihdfs-shutdown"));
    say(
        "READY rpc="
            + cluster.getNameNodePort()
            + " http="
            + cluster.getNameNode().getHttpAddress().getPort()
            + " datanode="
            + cluster.getDataNodes().get(0).getXferPort());
    hdfs.serve();
    System.exit(0);
  }

  /** Small blocks, one replica, no permission checks, fast heartbeats for NameNode restarts. */
  private static Configuration configuration(String bindHost, String dataNodeHost) {
    Configuration conf = new HdfsConfiguration();
    conf.set("dfs.namenode.rpc-bind-host", bindHost);
    conf.set("dfs.namenode.servicerpc-bind-host", bindHost);
    conf.set("dfs.namenode.http-bind-host", bindHost);
    conf.set("dfs.datanode.address", bindHost + ":0");
    conf.set("dfs.datanode.ipc.address", bindHost + ":0");
    conf.set("dfs.datanode.http.address", bindHost + ":0");
    conf.set("dfs.datanode.hostname", dataNodeHost);
    conf.setBoolean("dfs.webhdfs.enabled", true);
    conf.setBoolean("dfs.permissions.enabled", false);
    conf.setInt("dfs.replication", 1);
    conf.setLong("dfs.blocksize", 16L * 1024 * 1024);
    conf.setLong("dfs.heartbeat.interval", 1);
    conf.setInt("ipc.client.connect.max.retries", 2);
    conf.setInt("ipc.client.connect.retry.interval", 500);
    return conf;
  }

  /** Answer commands until stdin closes. */
  private void serve() throws Exception {
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line = in.readLine(); line != null; line = in.readLine()) {
      String command = line.trim();
      if (command.isEmpty()) {
        continue;
      }
      try {
        run(command);
        say("OK " + command);
      } catch (Exception e) {
        say("ERROR " + command + " " + e.toString().replace('\n', ' '));
      }
    }
  }

  private void run(String command) throws Exception {
    switch (command) {
      case "stop-namenode":
        cluster.shutdownNameNode(0);
        break;
      case "start-namenode":
        cluster.restartNameNode(0, true);
        cluster.waitActive();
        break;
      default:
        throw new IllegalArgumentException("unknown command");
    }
  }

  private synchronized void close() {
    if (!closed) {
      closed = true;
      cluster.shutdown(true);
    }
  }

  private static void say(String line) {
    System.out.println(PREFIX + line);
    System.out.flush();
  }

  /** {@code --key value} pairs; anything else is a usage error. */
  private static Map<String, String> parse(String[] args) {
    Map<String, String> opts = new HashMap<>();
    for (int i = 0; i < args.length; i += 2) {
      if (!args[i].startsWith("--") || i + 1 >= args.length) {
        throw new IllegalArgumentException(
            "usage: MiniHdfs --base-dir DIR [--rpc-port N] [--http-port N]"
                + " [--bind-host H] [--datanode-host H]");
      }
      opts.put(args[i].substring(2), args[i + 1]);
    }
    return opts;
  }

  private static String require(Map<String, String> opts, String key) {
    String value = opts.get(key);
    if (value == null) {
      throw new IllegalArgumentException("--" + key + " is required");
    }
    return value;
  }
}
