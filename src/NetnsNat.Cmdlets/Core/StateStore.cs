using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Management.Automation;
using System.Text;
using System.Text.Json;
using NetnsNat.Linux;

namespace NetnsNat.Core
{
    /// <summary>One namespace's NAT as NetnsNat recorded it when it enabled it.</summary>
    internal sealed record StoredBinding(
        string Namespace,
        string NamespacePath,
        string Bridge,
        string Family,
        string Subnet,
        string Gateway,
        string Outbound,
        string Backend,
        IReadOnlyList<string>? Dns,
        bool WroteResolvConf,
        string EnabledAt)
    {
        /// <summary>The key of the rules it uses, shared with every binding on the same bridge, subnet and uplink.</summary>
        public string RulesKey => StoredRules.KeyOf(Family, Subnet, Outbound, Bridge, Backend);

        public bool SameNamespace(string path, string bridge, string family) => NamespacePath == path && Bridge == bridge && Family == family;
    }

    /// <summary>
    /// The rules of one subnet's NAT as NetnsNat met them: which it added (and takes away when the last binding
    /// using them goes) and which stood before it came (and are never removed by it). Rules are in the backend's own
    /// text (iptables-save lines for iptables).
    /// </summary>
    internal sealed record StoredRules(string Family, string Subnet, string Outbound, string Bridge, string Backend, IReadOnlyList<string> Added, IReadOnlyList<string> Found)
    {
        public string Key => KeyOf(Family, Subnet, Outbound, Bridge, Backend);

        /// <summary>A subnet NAT's key: the same subnet, uplink and bridge in two backends are two sets of rules.</summary>
        public static string KeyOf(string family, string subnet, string outbound, string bridge, string backend) => $"{family} {subnet} {outbound} {bridge} {backend}";
    }

    /// <summary>A port mapping NetnsNat added, and the namespace it is for.</summary>
    internal sealed record StoredMapping(string Namespace, string NamespacePath, string Protocol, string ExternalAddress, int ExternalPort, string InternalAddress,
        int InternalPort, string? Remote, string Bridge, string Subnet, string Outbound, string AddedAt, string Backend = "iptables")
    {
        public string Family => InternalAddress.IndexOf(':') >= 0 ? "IPv6" : "IPv4";

        /// <summary>The mapping as the core works with it; null when the record does not parse.</summary>
        public Model.PortMapping? ToMapping()
        {
            if (!Cidr.TryParseAddress(InternalAddress, out var inside) || !Cidr.TryParseAddress(ExternalAddress, out var outside) || !Cidr.TryParseNetwork(Subnet, out var subnet)) return null;
            System.Net.IPNetwork? remote = null;
            if (Remote != null)
            {
                if (!Cidr.TryParseNetwork(Remote, out var r)) return null;
                remote = r;
            }
            var any = outside.Equals(System.Net.IPAddress.Any) || outside.Equals(System.Net.IPAddress.IPv6Any);
            return new Model.PortMapping(Protocol, any ? null : outside, ExternalPort, inside, InternalPort, remote, Bridge, subnet, Outbound);
        }

        /// <param name="backend">The backend its rules are in, as the store names it ("iptables", "nftables").</param>
        public static StoredMapping Of(Model.PortMapping m, NamespaceRef ns, string addedAt, string backend) =>
            new StoredMapping(ns.Display, ns.Path, m.Protocol, m.ExternalText, m.ExternalPort, m.InternalAddress.ToString(), m.InternalPort,
                m.Remote is System.Net.IPNetwork r ? Cidr.Format(r) : null, m.Bridge, Cidr.Format(m.Subnet), m.Outbound, addedAt, backend);
    }

    /// <summary>What the store holds for one network namespace of the host.</summary>
    internal sealed class StoreContent
    {
        public List<StoredBinding> Bindings { get; } = new List<StoredBinding>();

        public List<StoredRules> Rules { get; } = new List<StoredRules>();

        public List<StoredMapping> Mappings { get; } = new List<StoredMapping>();

        /// <summary>The families whose forwarding NetnsNat turned on (it was off before).</summary>
        public HashSet<string> ForwardingTurnedOn { get; } = new HashSet<string>(StringComparer.Ordinal);

        /// <summary>Tables NetnsNat's writes created ("ip nat"), removed when the last binding goes and they are empty.</summary>
        public HashSet<string> CreatedTables { get; } = new HashSet<string>(StringComparer.Ordinal);

        /// <summary>Uplinks whose accept_ra NetnsNat raised from 1 to 2 with IPv6 forwarding, and the value they had.</summary>
        public Dictionary<string, int> AcceptRaChanged { get; } = new Dictionary<string, int>(StringComparer.Ordinal);

        public bool IsEmpty => Bindings.Count == 0 && Rules.Count == 0 && Mappings.Count == 0 && ForwardingTurnedOn.Count == 0 && CreatedTables.Count == 0 && AcceptRaChanged.Count == 0;

        public IEnumerable<StoredBinding> Using(string rulesKey) => Bindings.Where(b => b.RulesKey == rulesKey);

        /// <summary>A copy whose collections can change without changing this one (the records in them never change).</summary>
        public StoreContent Clone()
        {
            var copy = new StoreContent();
            copy.Bindings.AddRange(Bindings);
            copy.Rules.AddRange(Rules);
            copy.Mappings.AddRange(Mappings);
            copy.ForwardingTurnedOn.UnionWith(ForwardingTurnedOn);
            copy.CreatedTables.UnionWith(CreatedTables);
            foreach (var (k, v) in AcceptRaChanged) copy.AcceptRaChanged[k] = v;
            return copy;
        }
    }

    /// <summary>
    /// NetnsNat's record of what it enabled and what it added: /var/lib/netnsnat/netns-INODE.json, one file per network
    /// namespace of the host (hosts that share a filesystem, such as containers or the lab's hosts, never see each
    /// other's bindings). Read and written only under the ruleset lock; written atomically (a temporary file, fsync,
    /// rename), the previous file kept as .bak. A corrupt or unreadable file is an error that names it: never a crash,
    /// never silently replaced.
    /// </summary>
    internal static class StateStore
    {
        public const string Directory = "/var/lib/netnsnat";
        private const int Version = 1;

        public static string PathOf(string netns) => Path.Combine(Directory, "netns-" + netns + ".json");

        public static string CurrentPath => PathOf(NetnsIdentity.Current());

        /// <summary>
        /// The store as it is now, for a caller that only reads it: the ruleset lock is taken for the read (so no write is
        /// half seen) and released at once.
        /// </summary>
        public static StoreContent Read(ICommandHost host)
        {
            using var held = RulesetLock.Acquire(host.Token, Settings.LockTimeout, host.Verbose);
            return Load(held);
        }

        /// <summary>The store of this network namespace; empty when there is none yet. Needs the ruleset lock.</summary>
        public static StoreContent Load(RulesetLock held)
        {
            held.Require();
            var path = CurrentPath;
            var content = new StoreContent();
            var info = new FileInfo(path);
            if (!info.Exists) return content;
            // The file as this process last read or wrote it (the same size and modification time, to the 100 ns): its
            // content without parsing it again, which at a thousand bindings is most of a call.
            if (_cached is { } cached && cached.Path == path && cached.Length == info.Length && cached.Modified == info.LastWriteTimeUtc.Ticks) return cached.Content.Clone();
            byte[] bytes;
            try
            {
                bytes = File.ReadAllBytes(path);
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                throw Unreadable(path, ex.Message, ex);
            }
            try
            {
                using var doc = JsonDocument.Parse(bytes);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("version", out var v) || v.GetInt32() != Version)
                {
                    throw Unreadable(path, $"it is not a NetnsNat store of version {Version}", null);
                }
                foreach (var b in Array(root, "bindings"))
                {
                    content.Bindings.Add(new StoredBinding(
                        Text(b, "namespace"), Text(b, "namespacePath"), Text(b, "bridge"), Text(b, "family"), Text(b, "subnet"), Text(b, "gateway"),
                        Text(b, "outbound"), Text(b, "backend"), b.TryGetProperty("dns", out var dns) && dns.ValueKind == JsonValueKind.Array ? Strings(dns) : null,
                        b.TryGetProperty("wroteResolvConf", out var w) && w.ValueKind == JsonValueKind.True, Text(b, "enabledAt")));
                }
                foreach (var r in Array(root, "rules"))
                {
                    content.Rules.Add(new StoredRules(Text(r, "family"), Text(r, "subnet"), Text(r, "outbound"), Text(r, "bridge"), Text(r, "backend"),
                        Strings(r.GetProperty("added")), Strings(r.GetProperty("found"))));
                }
                foreach (var m in Array(root, "mappings"))
                {
                    content.Mappings.Add(new StoredMapping(Text(m, "namespace"), Text(m, "namespacePath"), Text(m, "protocol"), Text(m, "externalAddress"),
                        m.GetProperty("externalPort").GetInt32(), Text(m, "internalAddress"), m.GetProperty("internalPort").GetInt32(),
                        m.TryGetProperty("remote", out var remote) && remote.ValueKind == JsonValueKind.String ? remote.GetString() : null,
                        Text(m, "bridge"), Text(m, "subnet"), Text(m, "outbound"), Text(m, "addedAt"),
                        // 0.1's records name no backend: their rules are iptables'.
                        m.TryGetProperty("backend", out var backend) && backend.ValueKind == JsonValueKind.String ? backend.GetString() ?? "iptables" : "iptables"));
                }
                foreach (var f in Array(root, "forwardingTurnedOn")) content.ForwardingTurnedOn.Add(f.GetString() ?? string.Empty);
                foreach (var t in Array(root, "createdTables")) content.CreatedTables.Add(t.GetString() ?? string.Empty);
                foreach (var a in Array(root, "acceptRaChanged")) content.AcceptRaChanged[Text(a, "interface")] = a.GetProperty("previous").GetInt32();
            }
            catch (Exception ex) when (ex is JsonException || ex is InvalidOperationException || ex is KeyNotFoundException || ex is FormatException)
            {
                throw Unreadable(path, ex.Message, ex);
            }
            _cached = new CachedStore(path, info.Length, info.LastWriteTimeUtc.Ticks, content.Clone());
            return content;
        }

        /// <summary>The content of the store file as this process last read or wrote it, with the file's size and time then.</summary>
        private sealed record CachedStore(string Path, long Length, long Modified, StoreContent Content);

        private static CachedStore? _cached;


        /// <summary>Writes the store atomically, keeping the previous file as .bak. Needs the ruleset lock.</summary>
        public static void Save(StoreContent content, RulesetLock held)
        {
            held.Require();
            var path = CurrentPath;
            if (content.IsEmpty)
            {
                // Nothing left to remember: no file (the .bak keeps the last one).
                if (File.Exists(path)) File.Move(path, path + ".bak", overwrite: true);
                _cached = null;
                return;
            }
            if (!System.IO.Directory.Exists(Directory))
            {
                System.IO.Directory.CreateDirectory(Directory);
                File.SetUnixFileMode(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            var temp = path + ".tmp";
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
                {
                    Write(json, content);
                }
                stream.Flush(flushToDisk: true);
            }
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            if (File.Exists(path))
            {
                // The previous file kept as .bak by a second name (a hard link, whatever its size); a copy where links fail.
                File.Delete(path + ".bak");
                if (Linux.Native.link(path, path + ".bak") != 0) File.Copy(path, path + ".bak", overwrite: true);
            }
            File.Move(temp, path, overwrite: true);
            var info = new FileInfo(path);
            _cached = new CachedStore(path, info.Length, info.LastWriteTimeUtc.Ticks, content.Clone());
        }

        private static void WriteStrings(Utf8JsonWriter json, string name, IEnumerable<string> values)
        {
            json.WriteStartArray(name);
            foreach (var v in values) json.WriteStringValue(v);
            json.WriteEndArray();
        }

        private static void Write(Utf8JsonWriter json, StoreContent content)
        {
            json.WriteStartObject();
            json.WriteNumber("version", Version);
            json.WriteString("netns", NetnsIdentity.Current());
            json.WriteStartArray("bindings");
            foreach (var b in content.Bindings)
            {
                json.WriteStartObject();
                json.WriteString("namespace", b.Namespace);
                json.WriteString("namespacePath", b.NamespacePath);
                json.WriteString("bridge", b.Bridge);
                json.WriteString("family", b.Family);
                json.WriteString("subnet", b.Subnet);
                json.WriteString("gateway", b.Gateway);
                json.WriteString("outbound", b.Outbound);
                json.WriteString("backend", b.Backend);
                if (b.Dns != null) WriteStrings(json, "dns", b.Dns);
                json.WriteBoolean("wroteResolvConf", b.WroteResolvConf);
                json.WriteString("enabledAt", b.EnabledAt);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartArray("rules");
            foreach (var r in content.Rules)
            {
                json.WriteStartObject();
                json.WriteString("family", r.Family);
                json.WriteString("subnet", r.Subnet);
                json.WriteString("outbound", r.Outbound);
                json.WriteString("bridge", r.Bridge);
                json.WriteString("backend", r.Backend);
                WriteStrings(json, "added", r.Added);
                WriteStrings(json, "found", r.Found);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteStartArray("mappings");
            foreach (var m in content.Mappings)
            {
                json.WriteStartObject();
                json.WriteString("namespace", m.Namespace);
                json.WriteString("namespacePath", m.NamespacePath);
                json.WriteString("protocol", m.Protocol);
                json.WriteString("externalAddress", m.ExternalAddress);
                json.WriteNumber("externalPort", m.ExternalPort);
                json.WriteString("internalAddress", m.InternalAddress);
                json.WriteNumber("internalPort", m.InternalPort);
                if (m.Remote != null) json.WriteString("remote", m.Remote);
                json.WriteString("bridge", m.Bridge);
                json.WriteString("subnet", m.Subnet);
                json.WriteString("outbound", m.Outbound);
                json.WriteString("addedAt", m.AddedAt);
                json.WriteString("backend", m.Backend);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            WriteStrings(json, "forwardingTurnedOn", content.ForwardingTurnedOn.OrderBy(f => f, StringComparer.Ordinal));
            WriteStrings(json, "createdTables", content.CreatedTables.OrderBy(t => t, StringComparer.Ordinal));
            json.WriteStartArray("acceptRaChanged");
            foreach (var a in content.AcceptRaChanged.OrderBy(a => a.Key, StringComparer.Ordinal))
            {
                json.WriteStartObject();
                json.WriteString("interface", a.Key);
                json.WriteNumber("previous", a.Value);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }

        private static NetnsNatException Unreadable(string path, string why, Exception? inner) =>
            new NetnsNatException(
                $"NetnsNat's state store {path} cannot be read ({why}). Nothing was changed. Look at it, and if it cannot be repaired, move it away " +
                $"(mv {path} {path}.broken; the previous version is {path}.bak): NetnsNat then knows no bindings, so Disable-NamespaceNat " +
                "needs Enable-NamespaceNat again first, and Restore-NamespaceNat restores nothing.",
                "StateStoreUnreadable", ErrorCategory.ReadError, inner);

        private static IEnumerable<JsonElement> Array(JsonElement root, string name) =>
            root.TryGetProperty(name, out var a) && a.ValueKind == JsonValueKind.Array ? a.EnumerateArray() : Enumerable.Empty<JsonElement>();

        private static string Text(JsonElement e, string name) =>
            e.GetProperty(name).GetString() ?? throw new FormatException($"'{name}' is null");

        private static IReadOnlyList<string> Strings(JsonElement array) => array.EnumerateArray().Select(x => x.GetString() ?? string.Empty).ToArray();
    }
}

namespace NetnsNat.Core
{
    /// <summary>What Add- and Remove-NatMasquerade tell the state store, so that it keeps telling the truth.</summary>
    internal static class StoreNotes
    {
        /// <summary>
        /// Add-NatMasquerade wrote rules of a subnet NAT that bindings use: they are NetnsNat's, and go with the last
        /// binding that uses them.
        /// </summary>
        public static void Added(SubnetNatKey key, IEnumerable<string> written, NatTransaction tx)
        {
            var store = StateStore.Load(tx.Lock);
            var entry = store.Rules.FirstOrDefault(r => r.Key == key.Key);
            var added = written.ToArray();
            if (entry == null || added.Length == 0) return;
            store.Rules.Remove(entry);
            store.Rules.Add(entry with { Added = entry.Added.Union(added, StringComparer.Ordinal).ToArray(), Found = entry.Found.Except(added, StringComparer.Ordinal).ToArray() });
            StateStore.Save(store, tx.Lock);
        }

        /// <summary>
        /// Remove-NatMasquerade took a subnet NAT's rules away (of one bridge, or of any when bridge is null): the store
        /// forgets them; bindings that used them stay, not in force, until Restore- or Enable-NamespaceNat.
        /// </summary>
        public static void Removed(string family, string subnet, string outbound, string? bridge, string backend, NatTransaction tx)
        {
            var store = StateStore.Load(tx.Lock);
            int n = store.Rules.RemoveAll(r => r.Family == family && r.Subnet == subnet && r.Outbound == outbound && (bridge == null || r.Bridge == bridge) && r.Backend == backend);
            if (n > 0) StateStore.Save(store, tx.Lock);
        }
    }

    /// <summary>The key of a subnet NAT's rules in the store.</summary>
    internal sealed record SubnetNatKey(string Family, string Subnet, string Outbound, string Bridge, string Backend)
    {
        public string Key => StoredRules.KeyOf(Family, Subnet, Outbound, Bridge, Backend);
    }
}
