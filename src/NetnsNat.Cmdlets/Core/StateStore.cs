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
        /// <summary>
        /// The key of the rules it uses, shared with every binding on the same bridge, subnet and uplink: made once (a call
        /// compares it with every binding's), as a record's key fields are never changed by a with-expression.
        /// </summary>
        public string RulesKey { get; } = StoredRules.KeyOf(Family, Subnet, Outbound, Bridge, Backend);

        public bool SameNamespace(string path, string bridge, string family) => NamespacePath == path && Bridge == bridge && Family == family;
    }

    /// <summary>
    /// The rules of one subnet's NAT as NetnsNat met them: which it added (and takes away when the last binding
    /// using them goes) and which stood before it came (and are never removed by it). Rules are in the backend's own
    /// text (iptables-save lines for iptables).
    /// </summary>
    internal sealed record StoredRules(string Family, string Subnet, string Outbound, string Bridge, string Backend, IReadOnlyList<string> Added, IReadOnlyList<string> Found)
    {
        /// <summary>Made once, as <see cref="StoredBinding.RulesKey"/> is (a with-expression changes Added and Found, never the key fields).</summary>
        public string Key { get; } = KeyOf(Family, Subnet, Outbound, Bridge, Backend);

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

        /// <summary>The store as it was loaded or last saved (StateStore's own): what a save writes the change from.</summary>
        internal object? Basis { get; private set; }

        /// <summary>A copy to change, which remembers what it was loaded from.</summary>
        internal StoreContent Tracked(object basis)
        {
            var copy = Clone();
            copy.Basis = basis;
            return copy;
        }

        internal void Track(object? basis) => Basis = basis;

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
    /// NetnsNat's record of what it enabled and what it added, one per network namespace of the host (hosts that share a
    /// filesystem, such as containers or the lab's hosts, never see each other's bindings):
    /// <list type="bullet">
    /// <item>/var/lib/netnsnat/netns-INODE.json, the whole content, written atomically (a temporary file, fsync, rename),
    /// the previous file kept as .bak (and, when a journal starts, the file it follows);</item>
    /// <item>netns-INODE.journal beside it, the changes since, one JSON line per save (the records it removed and added),
    /// appended and fsync'ed: a save costs what its change is, not what the store holds. When the journal has grown as
    /// large as the file, the next save writes the whole content again and starts a new journal.</item>
    /// </list>
    /// Each journal line names the generation of the file it follows: a file put back from its .bak, or written whole
    /// again, never takes another file's changes. Read and written only under the ruleset lock. A corrupt or unreadable
    /// file is an error that names it: never a crash, never silently replaced. A last line cut short (a crash in the
    /// middle of its write) is a save that did not happen.
    /// </summary>
    internal static class StateStore
    {
        public const string Directory = "/var/lib/netnsnat";
        private const int Version = 1;

        /// <summary>The size under which a journal is never folded into the file, however small the file.</summary>
        private const long JournalFloor = 64 * 1024;

        public static string PathOf(string netns) => Path.Combine(Directory, "netns-" + netns + ".json");

        /// <summary>The journal of a store file: netns-INODE.journal.</summary>
        public static string JournalOf(string path) => Path.ChangeExtension(path, ".journal");

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

        /// <summary>The store's two files as one read saw them: their sizes and modification times (to the 100 ns).</summary>
        /// <summary>
        /// The store's two files as one read saw them: each one's size, modification and change times (to the
        /// nanosecond) and inode. A file written whole again is a new inode; a write by another process in the same
        /// clock tick at the same size still changes one of them.
        /// </summary>
        private sealed record Stamp(string Path, FileStamp File, FileStamp Journal)
        {
            public long Length => File.Length;

            public long JournalLength => Journal.Length;

            public static Stamp Of(string path) => new Stamp(path, FileStamp.Of(path), FileStamp.Of(JournalOf(path)));
        }

        /// <summary>One file's size (-1 when there is none), times and inode (statx; size and time alone where it is missing).</summary>
        private sealed record FileStamp(long Length, long Modified, long Changed, ulong Inode)
        {
            private static readonly FileStamp Missing = new FileStamp(-1, 0, 0, 0);

            public static FileStamp Of(string path)
            {
                var buffer = new byte[256];
                if (Linux.Native.statx(-100 /* AT_FDCWD */, path, 0, 0x7ff /* STATX_BASIC_STATS */, buffer) == 0)
                {
                    static long Time(byte[] b, int at) => BitConverter.ToInt64(b, at) * 1_000_000_000 + BitConverter.ToUInt32(b, at + 8);
                    return new FileStamp(BitConverter.ToInt64(buffer, 40), Time(buffer, 112), Time(buffer, 96), BitConverter.ToUInt64(buffer, 32));
                }
                var info = new FileInfo(path);
                return info.Exists ? new FileStamp(info.Length, info.LastWriteTimeUtc.Ticks, 0, 0) : Missing;
            }
        }

        /// <summary>What a read of the store found: the content, the file's generation, and whether the journal ends in a line cut short.</summary>
        private sealed record Snapshot(Stamp Stamp, StoreContent Content, string Generation, bool Torn);

        /// <summary>The store as this process last read or wrote it: its content without parsing it again, which at a thousand bindings is most of a call.</summary>
        private static Snapshot? _cached;

        /// <summary>The store of this network namespace; empty when there is none yet. Needs the ruleset lock.</summary>
        public static StoreContent Load(RulesetLock held)
        {
            held.Require();
            var path = CurrentPath;
            var stamp = Stamp.Of(path);
            if (_cached is not { } cached || cached.Stamp != stamp)
            {
                cached = _cached = stamp.Length < 0 ? new Snapshot(stamp, new StoreContent(), string.Empty, false) : ReadFiles(path, stamp);
            }
            return cached.Content.Tracked(cached);
        }

        private static Snapshot ReadFiles(string path, Stamp stamp)
        {
            var content = new StoreContent();
            var root = Parse(path, ReadBytes(path));
            try
            {
                if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("version", out var v) || v.GetInt32() != Version)
                {
                    throw Unreadable(path, $"it is not a NetnsNat store of version {Version}", null);
                }
                foreach (var b in Array(root, "bindings")) content.Bindings.Add(BindingOf(b));
                foreach (var r in Array(root, "rules")) content.Rules.Add(RulesOf(r));
                foreach (var m in Array(root, "mappings")) content.Mappings.Add(MappingOf(m));
                HostOf(root, content);
            }
            catch (Exception ex) when (ex is JsonException || ex is InvalidOperationException || ex is KeyNotFoundException || ex is FormatException)
            {
                throw Unreadable(path, ex.Message, ex);
            }
            var generation = root.TryGetProperty("generation", out var g) && g.ValueKind == JsonValueKind.String ? g.GetString() ?? string.Empty : string.Empty;
            bool torn = stamp.JournalLength > 0 && Replay(JournalOf(path), generation, content);
            return new Snapshot(stamp, content, generation, torn);
        }

        private static byte[] ReadBytes(string path)
        {
            try
            {
                return File.ReadAllBytes(path);
            }
            catch (Exception ex) when (ex is IOException || ex is UnauthorizedAccessException)
            {
                throw Unreadable(path, ex.Message, ex);
            }
        }

        private static JsonElement Parse(string path, ReadOnlySpan<byte> bytes)
        {
            try
            {
                var reader = new Utf8JsonReader(bytes);
                return JsonElement.ParseValue(ref reader);
            }
            catch (JsonException ex)
            {
                throw Unreadable(path, ex.Message, ex);
            }
        }

        /// <summary>
        /// Applies the journal's lines of this generation to the content, in order: each removes the records it names (the
        /// first of the same value) and appends the ones it adds. Returns whether the last line was cut short.
        /// </summary>
        private static bool Replay(string journal, string generation, StoreContent content)
        {
            var bytes = ReadBytes(journal);
            var bindings = new Replayed<StoredBinding>(content.Bindings, WriteBinding);
            var rules = new Replayed<StoredRules>(content.Rules, WriteRules);
            var mappings = new Replayed<StoredMapping>(content.Mappings, WriteMapping);
            int start = 0;
            while (start < bytes.Length)
            {
                int end = System.Array.IndexOf(bytes, (byte)'\n', start);
                if (end < 0) break;
                var line = Parse(journal, bytes.AsSpan(start, end - start));
                start = end + 1;
                try
                {
                    if (!line.TryGetProperty("generation", out var g) || g.GetString() != generation) continue;
                    if (line.TryGetProperty("remove", out var remove))
                    {
                        foreach (var b in Array(remove, "bindings")) bindings.Remove(BindingOf(b));
                        foreach (var r in Array(remove, "rules")) rules.Remove(RulesOf(r));
                        foreach (var m in Array(remove, "mappings")) mappings.Remove(MappingOf(m));
                    }
                    if (line.TryGetProperty("add", out var add))
                    {
                        foreach (var b in Array(add, "bindings")) bindings.Add(BindingOf(b));
                        foreach (var r in Array(add, "rules")) rules.Add(RulesOf(r));
                        foreach (var m in Array(add, "mappings")) mappings.Add(MappingOf(m));
                    }
                    HostOf(line, content);
                }
                catch (Exception ex) when (ex is JsonException || ex is InvalidOperationException || ex is KeyNotFoundException || ex is FormatException)
                {
                    throw Unreadable(journal, ex.Message, ex);
                }
            }
            bindings.Finish();
            rules.Finish();
            mappings.Finish();
            return start < bytes.Length;
        }

        /// <summary>
        /// A list of records as a journal changes it: a removal takes the first record of the same value (its compact JSON),
        /// found through an index made the first time one is removed.
        /// </summary>
        private sealed class Replayed<T>
            where T : class
        {
            private readonly List<T> _list;
            private readonly Action<Utf8JsonWriter, T> _write;
            private readonly List<T?> _items;
            private Dictionary<string, Queue<int>>? _index;

            public Replayed(List<T> list, Action<Utf8JsonWriter, T> write)
            {
                _list = list;
                _write = write;
                _items = new List<T?>(list);
            }

            public void Add(T item)
            {
                _items.Add(item);
                if (_index != null) Enqueue(Key(item), _items.Count - 1);
            }

            public void Remove(T item)
            {
                if (_index == null)
                {
                    _index = new Dictionary<string, Queue<int>>(StringComparer.Ordinal);
                    for (int i = 0; i < _items.Count; i++)
                    {
                        if (_items[i] is { } x) Enqueue(Key(x), i);
                    }
                }
                if (_index.TryGetValue(Key(item), out var at) && at.Count > 0) _items[at.Dequeue()] = null;
            }

            public void Finish()
            {
                _list.Clear();
                foreach (var x in _items)
                {
                    if (x != null) _list.Add(x);
                }
            }

            private void Enqueue(string key, int i)
            {
                if (!_index!.TryGetValue(key, out var q)) _index[key] = q = new Queue<int>();
                q.Enqueue(i);
            }

            private string Key(T item) => Compact(json => _write(json, item));
        }

        private static string Compact(Action<Utf8JsonWriter> write)
        {
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var json = new Utf8JsonWriter(buffer)) write(json);
            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }

        /// <summary>
        /// Records the content: the change since it was loaded as one line appended to the journal, or, when there is no
        /// file to follow or the journal has grown as large as the file, the whole content in the file (the previous one
        /// kept as .bak) and an empty journal. Nothing is written when nothing changed. Needs the ruleset lock.
        /// </summary>
        public static void Save(StoreContent content, RulesetLock held)
        {
            held.Require();
            var path = CurrentPath;
            var journal = JournalOf(path);
            if (content.IsEmpty)
            {
                // Nothing left to remember: no file (the .bak keeps the last one written whole) and no journal.
                if (File.Exists(path)) File.Move(path, path + ".bak", overwrite: true);
                File.Delete(journal);
                _cached = null;
                content.Track(null);
                return;
            }
            if (!System.IO.Directory.Exists(Directory))
            {
                System.IO.Directory.CreateDirectory(Directory);
                File.SetUnixFileMode(Directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
            var basis = content.Basis as Snapshot;
            // The change is appended only to the files it was loaded from, as they were (under the same lock, nothing else wrote them).
            bool follows = basis != null && basis.Stamp.Length >= 0 && !basis.Torn && basis.Stamp == Stamp.Of(path);
            string generation;
            if (follows)
            {
                var line = JournalLine(basis!, content);
                if (line == null) return;
                long journalLength = Math.Max(basis!.Stamp.JournalLength, 0);
                if (journalLength + line.Length <= Math.Max(basis.Stamp.Length, InternalHooks.StoreJournalFloor ?? JournalFloor))
                {
                    // A new journal: the file it follows is copied to .bak too (a copy: an edit of the file in place must not change
                    // it), so that the file and the journal can be put back together. Once per journal, not per change.
                    if (basis.Stamp.JournalLength < 0) File.Copy(path, path + ".bak", overwrite: true);
                    Append(journal, line);
                    generation = basis.Generation;
                    Remember(path, content, generation);
                    return;
                }
            }
            generation = Guid.NewGuid().ToString("N");
            // The journal folded in: .bak keeps the content as it was before this save (the file with its journal), not
            // the file alone, which would lack every change the journal held.
            bool folded = follows && basis!.Stamp.JournalLength > 0;
            if (folded) WriteFile(path + ".bak", basis!.Content, basis.Generation);
            WriteWhole(path, content, generation, keepPrevious: !folded);
            File.Delete(journal);
            Remember(path, content, generation);
        }

        private static void Remember(string path, StoreContent content, string generation)
        {
            var snapshot = new Snapshot(Stamp.Of(path), content.Clone(), generation, false);
            _cached = snapshot;
            content.Track(snapshot);
        }

        /// <summary>Writes the content whole, atomically; the file it replaces kept as .bak when asked.</summary>
        private static void WriteWhole(string path, StoreContent content, string generation, bool keepPrevious)
        {
            var temp = path + ".tmp";
            WriteFile(temp, content, generation);
            if (keepPrevious && File.Exists(path)) KeepAsBackup(path);
            File.Move(temp, path, overwrite: true);
        }

        /// <summary>The content, whole, in a file (through a temporary file and a rename: never half written), fsync'ed, readable by root alone.</summary>
        private static void WriteFile(string path, StoreContent content, string generation)
        {
            var temp = path + ".part";
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
                {
                    Write(json, content, generation);
                }
                stream.Flush(flushToDisk: true);
            }
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.Move(temp, path, overwrite: true);
        }

        /// <summary>The file kept as .bak by a second name (a hard link, whatever its size); a copy where links fail.</summary>
        private static void KeepAsBackup(string path)
        {
            File.Delete(path + ".bak");
            if (Linux.Native.link(path, path + ".bak") != 0) File.Copy(path, path + ".bak", overwrite: true);
        }

        /// <summary>Appends one line in one write, and waits until it is on disk.</summary>
        private static void Append(string journal, byte[] line)
        {
            using var stream = new FileStream(journal, FileMode.Append, FileAccess.Write, FileShare.None);
            stream.Write(line);
            stream.Flush(flushToDisk: true);
            File.SetUnixFileMode(journal, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }

        /// <summary>The change from the loaded content to this one as a journal line (records compared by identity: they never change); null when there is none.</summary>
        private static byte[]? JournalLine(Snapshot basis, StoreContent content)
        {
            var before = basis.Content;
            var (removedBindings, addedBindings) = Difference(before.Bindings, content.Bindings);
            var (removedRules, addedRules) = Difference(before.Rules, content.Rules);
            var (removedMappings, addedMappings) = Difference(before.Mappings, content.Mappings);
            bool host = !before.ForwardingTurnedOn.SetEquals(content.ForwardingTurnedOn) || !before.CreatedTables.SetEquals(content.CreatedTables)
                || before.AcceptRaChanged.Count != content.AcceptRaChanged.Count || before.AcceptRaChanged.Any(a => !content.AcceptRaChanged.TryGetValue(a.Key, out var v) || v != a.Value);
            if (removedBindings.Count + addedBindings.Count + removedRules.Count + addedRules.Count + removedMappings.Count + addedMappings.Count == 0 && !host) return null;
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteString("generation", basis.Generation);
                json.WriteString("at", DateTime.UtcNow.ToString("o", System.Globalization.CultureInfo.InvariantCulture));
                void Records(string name, IReadOnlyList<StoredBinding> b, IReadOnlyList<StoredRules> r, IReadOnlyList<StoredMapping> m)
                {
                    if (b.Count + r.Count + m.Count == 0) return;
                    json.WriteStartObject(name);
                    WriteRecords(json, "bindings", b, WriteBinding);
                    WriteRecords(json, "rules", r, WriteRules);
                    WriteRecords(json, "mappings", m, WriteMapping);
                    json.WriteEndObject();
                }
                Records("remove", removedBindings, removedRules, removedMappings);
                Records("add", addedBindings, addedRules, addedMappings);
                if (host) WriteHost(json, content);
                json.WriteEndObject();
            }
            var line = new byte[buffer.WrittenCount + 1];
            buffer.WrittenSpan.CopyTo(line);
            line[^1] = (byte)'\n';
            return line;
        }

        /// <summary>
        /// The change from one list to the other as records removed (by value, first match) and records appended, by one
        /// walk in step: the records of before that after keeps in the same order are matched, the others removed, and what
        /// after holds past the last match appended. Replayed, that gives after exactly, whatever was done; when records
        /// are only taken out and added at the end (as the services do), it is the change itself.
        /// </summary>
        private static (IReadOnlyList<T> Removed, IReadOnlyList<T> Added) Difference<T>(List<T> before, List<T> after)
            where T : class
        {
            List<T>? removed = null;
            int j = 0;
            foreach (var x in before)
            {
                if (j < after.Count && ReferenceEquals(x, after[j])) j++;
                else (removed ??= new List<T>()).Add(x);
            }
            return ((IReadOnlyList<T>?)removed ?? System.Array.Empty<T>(), j == after.Count ? System.Array.Empty<T>() : after.GetRange(j, after.Count - j));
        }

        private static void WriteStrings(Utf8JsonWriter json, string name, IEnumerable<string> values)
        {
            json.WriteStartArray(name);
            foreach (var v in values) json.WriteStringValue(v);
            json.WriteEndArray();
        }

        private static void WriteRecords<T>(Utf8JsonWriter json, string name, IEnumerable<T> records, Action<Utf8JsonWriter, T> write)
        {
            json.WriteStartArray(name);
            foreach (var r in records) write(json, r);
            json.WriteEndArray();
        }

        private static void Write(Utf8JsonWriter json, StoreContent content, string generation)
        {
            json.WriteStartObject();
            json.WriteNumber("version", Version);
            json.WriteString("netns", NetnsIdentity.Current());
            json.WriteString("generation", generation);
            WriteRecords(json, "bindings", content.Bindings, WriteBinding);
            WriteRecords(json, "rules", content.Rules, WriteRules);
            WriteRecords(json, "mappings", content.Mappings, WriteMapping);
            WriteHost(json, content);
            json.WriteEndObject();
        }

        /// <summary>What NetnsNat changed on the host itself: forwarding it turned on, tables its writes created, accept_ra it raised.</summary>
        private static void WriteHost(Utf8JsonWriter json, StoreContent content)
        {
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
        }

        /// <summary>Sets the host's part from an object that has it (the file, or a journal line that changed it).</summary>
        private static void HostOf(JsonElement e, StoreContent content)
        {
            if (e.TryGetProperty("forwardingTurnedOn", out var forwarding))
            {
                content.ForwardingTurnedOn.Clear();
                foreach (var f in forwarding.EnumerateArray()) content.ForwardingTurnedOn.Add(f.GetString() ?? string.Empty);
            }
            if (e.TryGetProperty("createdTables", out var tables))
            {
                content.CreatedTables.Clear();
                foreach (var t in tables.EnumerateArray()) content.CreatedTables.Add(t.GetString() ?? string.Empty);
            }
            if (e.TryGetProperty("acceptRaChanged", out var ra))
            {
                content.AcceptRaChanged.Clear();
                foreach (var a in ra.EnumerateArray()) content.AcceptRaChanged[Text(a, "interface")] = a.GetProperty("previous").GetInt32();
            }
        }

        private static void WriteBinding(Utf8JsonWriter json, StoredBinding b)
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

        private static StoredBinding BindingOf(JsonElement b) => new StoredBinding(
            Text(b, "namespace"), Text(b, "namespacePath"), Text(b, "bridge"), Text(b, "family"), Text(b, "subnet"), Text(b, "gateway"),
            Text(b, "outbound"), Text(b, "backend"), b.TryGetProperty("dns", out var dns) && dns.ValueKind == JsonValueKind.Array ? Strings(dns) : null,
            b.TryGetProperty("wroteResolvConf", out var w) && w.ValueKind == JsonValueKind.True, Text(b, "enabledAt"));

        private static void WriteRules(Utf8JsonWriter json, StoredRules r)
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

        private static StoredRules RulesOf(JsonElement r) => new StoredRules(Text(r, "family"), Text(r, "subnet"), Text(r, "outbound"), Text(r, "bridge"), Text(r, "backend"),
            Strings(r.GetProperty("added")), Strings(r.GetProperty("found")));

        private static void WriteMapping(Utf8JsonWriter json, StoredMapping m)
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

        private static StoredMapping MappingOf(JsonElement m) => new StoredMapping(Text(m, "namespace"), Text(m, "namespacePath"), Text(m, "protocol"), Text(m, "externalAddress"),
            m.GetProperty("externalPort").GetInt32(), Text(m, "internalAddress"), m.GetProperty("internalPort").GetInt32(),
            m.TryGetProperty("remote", out var remote) && remote.ValueKind == JsonValueKind.String ? remote.GetString() : null,
            Text(m, "bridge"), Text(m, "subnet"), Text(m, "outbound"), Text(m, "addedAt"),
            // 0.1's records name no backend: their rules are iptables'.
            m.TryGetProperty("backend", out var backend) && backend.ValueKind == JsonValueKind.String ? backend.GetString() ?? "iptables" : "iptables");

        private static NetnsNatException Unreadable(string path, string why, Exception? inner) =>
            path.EndsWith(".journal", StringComparison.Ordinal)
                ? new NetnsNatException(
                    $"NetnsNat's state store journal {path} cannot be read ({why}). Nothing was changed. Look at it, and if it cannot be repaired, move it away " +
                    $"(mv {path} {path}.broken): NetnsNat then knows the store as {Path.ChangeExtension(path, ".json")} was last written whole, without the changes since.",
                    "StateStoreUnreadable", ErrorCategory.ReadError, inner)
                : new NetnsNatException(
                    $"NetnsNat's state store {path} cannot be read ({why}). Nothing was changed. Look at it, and if it cannot be repaired, move it away " +
                    $"(mv {path} {path}.broken; the previous version is {path}.bak, which NetnsNat brings up to date with the journal {JournalOf(path)} when that follows it): without either, NetnsNat knows no bindings, so Disable-NamespaceNat " +
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
