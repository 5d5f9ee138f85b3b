package io.kubetrain.hdfs;

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.minikdc.MiniKdc;

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
 *
 * <p>{@code --kerberos <protection>} (authentication, integrity or privacy) makes it a secure
 * cluster: a MiniKdc, Kerberos RPC with service authorization and permissions, block access tokens
 * and SASL on the DataNode's data transfer at that protection level (as a production cluster does
 * without privileged ports). The ready line then also names {@code realm=}, {@code krb5conf=} (for
 * MIT clients), {@code principal=} and {@code keytab=} of a client user whose home directory
 * {@code /user/<name>} exists, and {@code service=}, the NameNode's principal.
 */
public final class MiniHdfs {
  private static final String PREFIX = "MINIHDFS ";

  /** Host part of the service principals; clients name it, so it must not be canonicalized. */
  private static final String SERVICE_HOST = "localhost";

  private static final String CLIENT_USER = "alice";

  private final MiniDFSCluster cluster;
  private final MiniKdc kdc;
  private boolean closed;

  private MiniHdfs(MiniDFSCluster cluster, MiniKdc kdc) {
    this.cluster = cluster;
    this.kdc = kdc;
  }

  /**
   * Exit on any failure to start: the KDC's and daemons' threads would otherwise keep a JVM
   * whose cluster never came up alive, and the harness waiting for a ready line that never comes.
   */
  public static void main(String[] args) {
    try {
      run(args);
    } catch (Throwable e) {
      e.printStackTrace();
      System.exit(1);
    }
    System.exit(0);
  }

  private static void run(String[] args) throws Exception {
    Map<String, String> opts = parse(args);
    File baseDir = new File(require(opts, "base-dir"));
    String bindHost = opts.getOrDefault("bind-host", "0.0.0.0");
    String dataNodeHost = opts.getOrDefault("datanode-host", "127.0.0.1");
    int rpcPort = Integer.parseInt(opts.getOrDefault("rpc-port", "0"));
    int httpPort = Integer.parseInt(opts.getOrDefault("http-port", "0"));

    String protection = opts.get("kerberos");

    Configuration conf = configuration(bindHost, dataNodeHost);
    MiniKdc kdc = protection == null ? null : startKdc(baseDir);
    String secureReport = kdc == null ? "" : secure(conf, kdc, baseDir, protection);
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
    if (kdc != null) {
      makeHome(cluster.getFileSystem(), CLIENT_USER);
    }

    MiniHdfs hdfs = new MiniHdfs(cluster, kdc);
    Runtime.getRuntime().addShutdownHook(new Thread(hdfs::close, "minihdfs-shutdown"));
    say(
        "READY rpc="
            + cluster.getNameNodePort()
            + " http="
            + cluster.getNameNode().getHttpAddress().getPort()
            + " datanode="
            + cluster.getDataNodes().get(0).getXferPort()
            + secureReport);
    hdfs.serve();
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

  /**
   * A KDC on a free 127.0.0.1 TCP port, its state under {@code baseDir/kdc}. An address, not
   * localhost: MIT clients would try ::1 first, where an IPv4-only JVM does not listen.
   */
  private static MiniKdc startKdc(File baseDir) throws Exception {
    Properties kdcConf = MiniKdc.createConf();
    kdcConf.setProperty(MiniKdc.KDC_BIND_ADDRESS, "127.0.0.1");
    File workDir = new File(baseDir, "kdc");
    if (!workDir.mkdirs() && !workDir.isDirectory()) {
      throw new IllegalStateException("cannot create " + workDir);
    }
    MiniKdc kdc = new MiniKdc(kdcConf, workDir);
    kdc.start();
    return kdc;
  }

  /**
   * Turn {@code conf} into a Kerberized cluster's and create its principals and keytabs.
   *
   * <p>Without privileged ports a DataNode only accepts SASL-protected data transfer, and {@code
   * ignore.secure.ports.for.testing} lets it keep plain HTTP (as Hadoop's own SASL data transfer
   * tests do) instead of needing an HTTPS keystore.
   *
   * @return the ready line's extra {@code key=value} fields for clients
   */
  private static String secure(Configuration conf, MiniKdc kdc, File baseDir, String protection)
      throws Exception {
    String realm = kdc.getRealm();
    String service = "hdfs/" + SERVICE_HOST + "@" + realm;
    File serviceKeytab = new File(baseDir, "hdfs.keytab");
    kdc.createPrincipal(serviceKeytab, "hdfs/" + SERVICE_HOST, "HTTP/" + SERVICE_HOST);
    File clientKeytab = new File(baseDir, CLIENT_USER + ".keytab");
    kdc.createPrincipal(clientKeytab, CLIENT_USER);

    conf.set("hadoop.security.authentication", "kerberos");
    conf.setBoolean("hadoop.security.authorization", true);
    conf.setBoolean("dfs.permissions.enabled", true);
    conf.set("hadoop.rpc.protection", protection);
    conf.set("dfs.data.transfer.protection", protection);
    conf.setBoolean("dfs.block.access.token.enable", true);
    conf.setBoolean("ignore.secure.ports.for.testing", true);
    for (String daemon : new String[] {"namenode", "datanode"}) {
      conf.set("dfs." + daemon + ".kerberos.principal", service);
      conf.set("dfs." + daemon + ".keytab.file", serviceKeytab.getAbsolutePath());
    }
    conf.set("dfs.web.authentication.kerberos.principal", "HTTP/" + SERVICE_HOST + "@" + realm);
    conf.set("dfs.web.authentication.kerberos.keytab", serviceKeytab.getAbsolutePath());

    File krb5conf = writeClientKrb5Conf(kdc, new File(baseDir, "krb5.conf"));
    return " realm="
        + realm
        + " krb5conf="
        + krb5conf.getAbsolutePath()
        + " principal="
        + CLIENT_USER
        + "@"
        + realm
        + " keytab="
        + clientKeytab.getAbsolutePath()
        + " service="
        + service;
  }

  /**
   * A krb5.conf for MIT clients (libgssapi_krb5). MiniKdc's own is for the JVM; this one also
   * keeps {@code localhost} from being canonicalized into another service principal, and pins TCP,
   * the only transport MiniKdc serves by default.
   */
  private static File writeClientKrb5Conf(MiniKdc kdc, File file) throws Exception {
    String realm = kdc.getRealm();
    String text =
        String.join(
            "\n",
            "[libdefaults]",
            "  default_realm = " + realm,
            "  dns_lookup_kdc = false",
            "  dns_lookup_realm = false",
            "  dns_canonicalize_hostname = false",
            "  rdns = false",
            "  udp_preference_limit = 1",
            "[realms]",
            "  " + realm + " = {",
            "    kdc = " + kdc.getHost() + ":" + kdc.getPort(),
            "  }",
            "[domain_realm]",
            "  " + SERVICE_HOST + " = " + realm,
            "");
    Files.writeString(file.toPath(), text);
    return file;
  }

  /** {@code /user/<name>} owned by that user: with permissions on, clients write only there. */
  private static void makeHome(FileSystem fs, String user) throws Exception {
    Path home = new Path("/user/" + user);
    fs.mkdirs(home);
    fs.setOwner(home, user, user);
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
        execute(command);
        say("OK " + command);
      } catch (Exception e) {
        say("ERROR " + command + " " + e.toString().replace('\n', ' '));
      }
    }
  }

  private void execute(String command) throws Exception {
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
      if (kdc != null) {
        kdc.stop();
      }
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
                + " [--bind-host H] [--datanode-host H]"
                + " [--kerberos authentication|integrity|privacy]");
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
