// SPDX-License-Identifier: MIT
//
// Build-time compatibility step for TorchSharp's native library on older Linux distributions.
//
// libLibTorchSharp.so (TorchSharp 0.107) is linked against GCC 13's libstdc++ and therefore carries
// a version requirement on GLIBCXX_3.4.32, although the only symbol bound to that version,
// std::ios_base_library_init(), is a link-time marker that is never called. Distributions with an
// older libstdc++ (Debian 12 stops at GLIBCXX_3.4.30) refuse to load the library. Marking that one
// requirement VER_FLG_WEAK in .gnu.version_r makes glibc's loader accept the library there.
//
// This one file is compiled three ways: into CustomAutograd.Build.Tasks.dll (build/tasks/*.csproj, netstandard2.0),
// the task the NuGet package ships compiled; by MSBuild's RoslynCodeTaskFactory when a build imports
// build/LibStdCxxCompat.targets from the repository (so it keeps to netstandard2.0 APIs and to language
// features that need no extra runtime types); and into CustomAutograd.dll with CA_NO_MSBUILD and CA_ELF_INTERNAL
// defined (no task wrapper, internal types), where the start-up fallback uses it and the tests reach it.
//
// Why hand-written rather than LibObjectFile: the edit is two bytes (vna_flags) at an offset found by walking
// .gnu.version_r; LibObjectFile 2.3 has no typed GNU versioning sections (this walk would stay), targets net8.0+
// only (a task must also load in .NET Framework MSBuild), adds about 0.9 MB, and writing through its object
// model re-serialises the whole file instead of leaving every other byte as it was.

#nullable enable

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;

namespace CustomAutograd.Build;

/// <summary>
/// One version requirement (an <c>Elf64_Vernaux</c> entry of the <c>.gnu.version_r</c> section):
/// the library a version is required from, the version's name and its flags.
/// </summary>
#if CA_ELF_INTERNAL
internal
#else
public
#endif
sealed class VersionRequirement
{
    /// <summary>Creates a requirement record.</summary>
    /// <param name="fileName">The library the version is required from (<c>vn_file</c>), e.g. <c>libstdc++.so.6</c>.</param>
    /// <param name="versionName">The required version (<c>vna_name</c>), e.g. <c>GLIBCXX_3.4.32</c>.</param>
    /// <param name="flags">The entry's <c>vna_flags</c>.</param>
    public VersionRequirement(string fileName, string versionName, int flags)
    {
        FileName = fileName;
        VersionName = versionName;
        Flags = flags;
    }

    /// <summary>The library the version is required from, e.g. <c>libstdc++.so.6</c>.</summary>
    public string FileName { get; }

    /// <summary>The required version name, e.g. <c>GLIBCXX_3.4.32</c>.</summary>
    public string VersionName { get; }

    /// <summary>The entry's <c>vna_flags</c> (see <see cref="ElfSymbolVersions.VerFlagWeak"/>).</summary>
    public int Flags { get; }

    /// <summary>Whether the requirement is weak (<c>VER_FLG_WEAK</c>): the loader does not fail when it is missing.</summary>
    public bool IsWeak => (Flags & ElfSymbolVersions.VerFlagWeak) != 0;

    /// <inheritdoc />
    public override string ToString()
        => string.Format(CultureInfo.InvariantCulture, "{0}: {1} (flags 0x{2:x})", FileName, VersionName, Flags);
}

/// <summary>
/// Reads and edits the GNU symbol-versioning sections of ELF64 little-endian files
/// (<c>.gnu.version_r</c>, <c>.gnu.version_d</c>), and looks up the system's libstdc++.
/// </summary>
#if CA_ELF_INTERNAL
internal
#else
public
#endif
static class ElfSymbolVersions
{
    /// <summary>The section type of <c>.gnu.version_d</c> (<c>SHT_GNU_verdef</c>).</summary>
    public const int ShtGnuVerdef = 0x6ffffffd;

    /// <summary>The section type of <c>.gnu.version_r</c> (<c>SHT_GNU_verneed</c>).</summary>
    public const int ShtGnuVerneed = 0x6ffffffe;

    /// <summary><c>VER_FLG_BASE</c>: marks the version definition that names the file itself.</summary>
    public const int VerFlagBase = 0x1;

    /// <summary><c>VER_FLG_WEAK</c>: a requirement the loader tolerates to be missing.</summary>
    public const int VerFlagWeak = 0x2;

    /// <summary>The file name of the GNU C++ runtime library.</summary>
    public const string LibStdCxxName = "libstdc++.so.6";

    private const int ElfHeaderSize = 64;
    private const int SectionHeaderSize = 64;
    private const int VerneedSize = 16;
    private const int VernauxSize = 16;
    private const int VerdefSize = 20;
    private const int VerdauxSize = 8;
    private const int EmX86_64 = 62;
    private const int EmAArch64 = 183;

    /// <summary>Lists the version requirements recorded in a file's <c>.gnu.version_r</c> section(s).</summary>
    /// <param name="path">An ELF64 little-endian file.</param>
    /// <returns>One entry per <c>Vernaux</c>, in file order; empty when the file has no such section.</returns>
    /// <exception cref="InvalidDataException">The file is not an ELF64 little-endian file, or a table is truncated or inconsistent.</exception>
    public static IReadOnlyList<VersionRequirement> ReadRequirements(string path)
    {
        ElfFile elf = ElfFile.Load(path);
        var result = new List<VersionRequirement>();
        foreach (AuxEntry aux in elf.ReadVernauxEntries())
        {
            result.Add(new VersionRequirement(aux.FileName, aux.VersionName, aux.Flags));
        }

        return result;
    }

    /// <summary>Lists the version names a library defines in its <c>.gnu.version_d</c> section(s).</summary>
    /// <param name="path">An ELF64 little-endian file.</param>
    /// <returns>
    /// The names of the version definitions (the first <c>Verdaux</c> of each <c>Verdef</c>), in file order,
    /// without the base definition (<c>VER_FLG_BASE</c>, which names the file itself); empty when the file
    /// has no such section.
    /// </returns>
    /// <exception cref="InvalidDataException">The file is not an ELF64 little-endian file, or a table is truncated or inconsistent.</exception>
    public static IReadOnlyList<string> ReadDefinitions(string path)
    {
        ElfFile elf = ElfFile.Load(path);
        return elf.ReadDefinitionNames();
    }

    /// <summary>
    /// Sets <c>VER_FLG_WEAK</c> on every version requirement named <paramref name="versionName"/>.
    /// </summary>
    /// <remarks>
    /// Only the two-byte <c>vna_flags</c> fields change; the file's size and all other bytes stay the same.
    /// The new content is written to a temporary copy in the same directory, which then replaces the file,
    /// so a file that is a hard link (for example into the NuGet package cache) is never modified through
    /// the link (a symbolic link is replaced by a patched regular file). The copy keeps the file's permissions
    /// and its last-write time, so incremental copy steps
    /// (MSBuild's <c>SkipUnchangedFiles</c>) do not copy the unpatched original over it again.
    /// Nothing is written when no entry needs to change.
    /// </remarks>
    /// <param name="path">An ELF64 little-endian file.</param>
    /// <param name="versionName">The version whose requirement to weaken, e.g. <c>GLIBCXX_3.4.32</c>.</param>
    /// <returns>How many entries were changed: 0 when the version is not required or already weak.</returns>
    /// <exception cref="InvalidDataException">The file is not an ELF64 little-endian file, or a table is truncated or inconsistent.</exception>
    public static int WeakenRequirement(string path, string versionName)
    {
        if (string.IsNullOrEmpty(versionName))
        {
            throw new ArgumentException("A version name is required.", nameof(versionName));
        }

        ElfFile original = ElfFile.Load(path);
        if (CollectStrongEntries(original, versionName).Count == 0)
        {
            return 0;
        }

        string fullPath = Path.GetFullPath(path);
        string directory = Path.GetDirectoryName(fullPath) ?? ".";
        string tempPath = Path.Combine(
            directory,
            "." + Path.GetFileName(fullPath) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        bool isLink = (File.GetAttributes(fullPath) & FileAttributes.ReparsePoint) != 0;
        DateTime lastWriteUtc = File.GetLastWriteTimeUtc(fullPath);
        try
        {
            // File.Copy keeps the permission bits; the copy is an independent file even if the
            // source is a hard link, and for a symbolic link it holds the target's content.
            File.Copy(fullPath, tempPath, false);
            if (isLink)
            {
                // The time stamp read above is the link's own; the copy has the target's.
                lastWriteUtc = File.GetLastWriteTimeUtc(tempPath);
            }

            FileAttributes attributes = File.GetAttributes(tempPath);
            if ((attributes & FileAttributes.ReadOnly) != 0)
            {
                File.SetAttributes(tempPath, attributes & ~FileAttributes.ReadOnly);
            }

            // Re-read the copy so that the offsets patched are those of the bytes actually written.
            ElfFile copy = ElfFile.Load(tempPath);
            List<AuxEntry> entries = CollectStrongEntries(copy, versionName);
            using (var stream = new FileStream(tempPath, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
            {
                foreach (AuxEntry entry in entries)
                {
                    int flags = entry.Flags | VerFlagWeak;
                    stream.Position = entry.FlagsOffset;
                    stream.WriteByte((byte)(flags & 0xff));
                    stream.WriteByte((byte)((flags >> 8) & 0xff));
                }
            }

            if ((attributes & FileAttributes.ReadOnly) != 0)
            {
                File.SetAttributes(tempPath, attributes);
            }

            File.SetLastWriteTimeUtc(tempPath, lastWriteUtc);
            File.Replace(tempPath, fullPath, null);
            return entries.Count;
        }
        finally
        {
            if (File.Exists(tempPath))
            {
                try
                {
                    File.Delete(tempPath);
                }
                catch (IOException)
                {
                    // Best effort: the original error (if any) matters more than a stray temporary file.
                }
                catch (UnauthorizedAccessException)
                {
                    // As above.
                }
            }
        }
    }

    /// <summary>
    /// Locates the system's <c>libstdc++.so.6</c> for the architecture of the current process:
    /// first from <c>ldconfig -p</c>, then in the usual library directories.
    /// </summary>
    /// <returns>The library's path, or <see langword="null"/> when none is found (or not on Linux).</returns>
    public static string? FindSystemLibStdCxx()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
        {
            return null;
        }

        foreach (string candidate in LdconfigCandidates())
        {
            if (IsUsableLibrary(candidate))
            {
                return candidate;
            }
        }

        foreach (string directory in LibraryDirectories())
        {
            string candidate = Path.Combine(directory, LibStdCxxName);
            if (IsUsableLibrary(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>Whether the system's libstdc++ (see <see cref="FindSystemLibStdCxx"/>) defines a version.</summary>
    /// <param name="version">A version name, e.g. <c>GLIBCXX_3.4.32</c>.</param>
    /// <returns><see langword="false"/> when the library is not found or does not define <paramref name="version"/>.</returns>
    public static bool SystemProvides(string version)
    {
        string? library = FindSystemLibStdCxx();
        if (library == null)
        {
            return false;
        }

        foreach (string name in ReadDefinitions(library))
        {
            if (string.Equals(name, version, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    private static List<AuxEntry> CollectStrongEntries(ElfFile elf, string versionName)
    {
        var entries = new List<AuxEntry>();
        foreach (AuxEntry aux in elf.ReadVernauxEntries())
        {
            if ((aux.Flags & VerFlagWeak) == 0 && string.Equals(aux.VersionName, versionName, StringComparison.Ordinal))
            {
                entries.Add(aux);
            }
        }

        return entries;
    }

    private static int ExpectedMachine()
    {
        switch (RuntimeInformation.ProcessArchitecture)
        {
            case Architecture.X64:
                return EmX86_64;
            case Architecture.Arm64:
                return EmAArch64;
            default:
                return -1;
        }
    }

    private static string[] LibraryDirectories()
    {
        string[] x64 = { "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu" };
        string[] arm64 = { "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu" };
        string[] common = { "/lib64", "/usr/lib64", "/usr/lib", "/lib" };
        var directories = new List<string>();
        if (RuntimeInformation.ProcessArchitecture == Architecture.Arm64)
        {
            directories.AddRange(arm64);
            directories.AddRange(common);
            directories.AddRange(x64);
        }
        else
        {
            directories.AddRange(x64);
            directories.AddRange(common);
            directories.AddRange(arm64);
        }

        return directories.ToArray();
    }

    private static List<string> LdconfigCandidates()
    {
        var candidates = new List<string>();
        string? output = null;
        foreach (string ldconfig in new[] { "ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig" })
        {
            output = RunForOutput(ldconfig, "-p");
            if (output != null)
            {
                break;
            }
        }

        if (output == null)
        {
            return candidates;
        }

        // Lines look like: "\tlibstdc++.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libstdc++.so.6".
        foreach (string rawLine in output.Split('\n'))
        {
            string line = rawLine.Trim();
            if (!line.StartsWith(LibStdCxxName + " ", StringComparison.Ordinal))
            {
                continue;
            }

            int arrow = line.IndexOf("=>", StringComparison.Ordinal);
            if (arrow < 0)
            {
                continue;
            }

            string candidate = line.Substring(arrow + 2).Trim();
            if (candidate.Length > 0)
            {
                candidates.Add(candidate);
            }
        }

        return candidates;
    }

    private static string? RunForOutput(string fileName, string arguments)
    {
        try
        {
            var startInfo = new ProcessStartInfo(fileName, arguments)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                CreateNoWindow = true,
            };
            using (Process? process = Process.Start(startInfo))
            {
                if (process == null)
                {
                    return null;
                }

                process.ErrorDataReceived += (sender, e) => { };
                process.BeginErrorReadLine();
                string output = process.StandardOutput.ReadToEnd();
                if (!process.WaitForExit(10000))
                {
                    try
                    {
                        process.Kill();
                    }
                    catch (InvalidOperationException)
                    {
                        // It exited meanwhile.
                    }

                    return null;
                }

                return process.ExitCode == 0 ? output : null;
            }
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // Not installed / not on PATH.
        }
        catch (InvalidOperationException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether a file exists and is an ELF64 little-endian file for this process's architecture.</summary>
    private static bool IsUsableLibrary(string path)
    {
        try
        {
            if (!File.Exists(path))
            {
                return false;
            }

            var header = new byte[20];
            using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite))
            {
                int read = 0;
                while (read < header.Length)
                {
                    int n = stream.Read(header, read, header.Length - read);
                    if (n <= 0)
                    {
                        return false;
                    }

                    read += n;
                }
            }

            if (header[0] != 0x7f || header[1] != (byte)'E' || header[2] != (byte)'L' || header[3] != (byte)'F'
                || header[4] != 2 || header[5] != 1)
            {
                return false;
            }

            int expected = ExpectedMachine();
            int machine = header[18] | (header[19] << 8);
            return expected < 0 || machine == expected;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>A <c>Vernaux</c> entry with the file offset of its <c>vna_flags</c> field.</summary>
    private sealed class AuxEntry
    {
        public AuxEntry(string fileName, string versionName, int flags, long flagsOffset)
        {
            FileName = fileName;
            VersionName = versionName;
            Flags = flags;
            FlagsOffset = flagsOffset;
        }

        public string FileName { get; }

        public string VersionName { get; }

        public int Flags { get; }

        public long FlagsOffset { get; }
    }

    /// <summary>A section header's fields that matter here.</summary>
    private sealed class Section
    {
        public Section(int type, long offset, long size, int link, int info)
        {
            Type = type;
            Offset = offset;
            Size = size;
            Link = link;
            Info = info;
        }

        public int Type { get; }

        public long Offset { get; }

        public long Size { get; }

        public int Link { get; }

        public int Info { get; }
    }

    /// <summary>An ELF64 little-endian file held in memory, with bounds-checked readers.</summary>
    private sealed class ElfFile
    {
        private readonly string _path;
        private readonly byte[] _data;
        private readonly List<Section> _sections;

        private ElfFile(string path, byte[] data)
        {
            _path = path;
            _data = data;
            _sections = ReadSectionHeaders();
        }

        public static ElfFile Load(string path)
        {
            byte[] data = File.ReadAllBytes(path); // Throws ArgumentNullException for null.
            if (data.Length < 16 || data[0] != 0x7f || data[1] != (byte)'E' || data[2] != (byte)'L' || data[3] != (byte)'F')
            {
                throw new InvalidDataException(string.Format(CultureInfo.InvariantCulture, "'{0}' is not an ELF file.", path));
            }

            if (data[4] != 2)
            {
                throw new InvalidDataException(string.Format(
                    CultureInfo.InvariantCulture, "'{0}' is not a 64-bit ELF file (EI_CLASS {1}); only ELF64 is supported.", path, data[4]));
            }

            if (data[5] != 1)
            {
                throw new InvalidDataException(string.Format(
                    CultureInfo.InvariantCulture, "'{0}' is not a little-endian ELF file (EI_DATA {1}); only little-endian is supported.", path, data[5]));
            }

            if (data.Length < ElfHeaderSize)
            {
                throw new InvalidDataException(string.Format(CultureInfo.InvariantCulture, "'{0}' is truncated: its ELF header is incomplete.", path));
            }

            return new ElfFile(path, data);
        }

        public List<AuxEntry> ReadVernauxEntries()
        {
            var entries = new List<AuxEntry>();
            foreach (Section section in _sections)
            {
                if (section.Type != ShtGnuVerneed)
                {
                    continue;
                }

                Section strings = LinkedStringTable(section, ".gnu.version_r");
                long end = section.Offset + section.Size;
                long entryOffset = section.Offset;
                int maxEntries = (int)Math.Min(int.MaxValue, section.Size / VerneedSize);
                for (int i = 0; section.Info == 0 || i < section.Info; i++)
                {
                    if (i >= maxEntries)
                    {
                        throw Truncated(".gnu.version_r (more Verneed records than fit in the section)");
                    }

                    CheckRange(entryOffset, VerneedSize, section.Offset, end, ".gnu.version_r Verneed record");
                    int count = U16(entryOffset + 2);
                    string file = ReadString(strings, U32(entryOffset + 4));
                    long auxOffset = entryOffset + U32(entryOffset + 8);
                    for (int j = 0; j < count; j++)
                    {
                        CheckRange(auxOffset, VernauxSize, section.Offset, end, ".gnu.version_r Vernaux record");
                        int flags = U16(auxOffset + 4);
                        string name = ReadString(strings, U32(auxOffset + 8));
                        entries.Add(new AuxEntry(file, name, flags, auxOffset + 4));
                        long nextAux = U32(auxOffset + 12);
                        if (nextAux == 0)
                        {
                            break;
                        }

                        auxOffset += nextAux;
                    }

                    long next = U32(entryOffset + 12);
                    if (next == 0)
                    {
                        break;
                    }

                    entryOffset += next;
                }
            }

            return entries;
        }

        public List<string> ReadDefinitionNames()
        {
            var names = new List<string>();
            foreach (Section section in _sections)
            {
                if (section.Type != ShtGnuVerdef)
                {
                    continue;
                }

                Section strings = LinkedStringTable(section, ".gnu.version_d");
                long end = section.Offset + section.Size;
                long entryOffset = section.Offset;
                int maxEntries = (int)Math.Min(int.MaxValue, section.Size / VerdefSize);
                for (int i = 0; section.Info == 0 || i < section.Info; i++)
                {
                    if (i >= maxEntries)
                    {
                        throw Truncated(".gnu.version_d (more Verdef records than fit in the section)");
                    }

                    CheckRange(entryOffset, VerdefSize, section.Offset, end, ".gnu.version_d Verdef record");
                    int flags = U16(entryOffset + 2);
                    int auxCount = U16(entryOffset + 6);
                    if (auxCount > 0 && (flags & VerFlagBase) == 0)
                    {
                        long auxOffset = entryOffset + U32(entryOffset + 12);
                        CheckRange(auxOffset, VerdauxSize, section.Offset, end, ".gnu.version_d Verdaux record");
                        names.Add(ReadString(strings, U32(auxOffset)));
                    }

                    long next = U32(entryOffset + 16);
                    if (next == 0)
                    {
                        break;
                    }

                    entryOffset += next;
                }
            }

            return names;
        }

        private List<Section> ReadSectionHeaders()
        {
            long tableOffset = U64(0x28);
            int entrySize = U16(0x3A);
            long count = U16(0x3C);
            var sections = new List<Section>();
            if (tableOffset == 0)
            {
                return sections; // No section header table.
            }

            if (entrySize < SectionHeaderSize)
            {
                throw new InvalidDataException(string.Format(
                    CultureInfo.InvariantCulture, "'{0}' has an invalid section header size {1}.", _path, entrySize));
            }

            if (count == 0)
            {
                // Extended numbering: the real count is in the first section header's sh_size.
                CheckRange(tableOffset, SectionHeaderSize, 0, _data.Length, "section header table");
                count = U64(tableOffset + 32);
            }

            if (count > (_data.Length - tableOffset) / entrySize)
            {
                throw Truncated("section header table");
            }

            for (long i = 0; i < count; i++)
            {
                long header = tableOffset + (i * entrySize);
                CheckRange(header, SectionHeaderSize, 0, _data.Length, "section header table");
                sections.Add(new Section(
                    type: (int)U32(header + 4),
                    offset: U64(header + 24),
                    size: U64(header + 32),
                    link: (int)U32(header + 40),
                    info: (int)U32(header + 44)));
            }

            return sections;
        }

        private Section LinkedStringTable(Section section, string what)
        {
            if (section.Link <= 0 || section.Link >= _sections.Count)
            {
                throw new InvalidDataException(string.Format(
                    CultureInfo.InvariantCulture, "'{0}': {1} links to section {2}, which does not exist.", _path, what, section.Link));
            }

            Section strings = _sections[section.Link];
            CheckRange(section.Offset, section.Size, 0, _data.Length, what);
            CheckRange(strings.Offset, strings.Size, 0, _data.Length, what + " string table");
            return strings;
        }

        private string ReadString(Section strings, long offset)
        {
            if (offset < 0 || offset >= strings.Size)
            {
                throw Truncated("string table (a name points past its end)");
            }

            long start = strings.Offset + offset;
            long limit = strings.Offset + strings.Size;
            long end = start;
            while (end < limit && _data[end] != 0)
            {
                end++;
            }

            if (end >= limit)
            {
                throw Truncated("string table (a name is not terminated)");
            }

            return Encoding.UTF8.GetString(_data, (int)start, (int)(end - start));
        }

        private void CheckRange(long offset, long length, long lower, long upper, string what)
        {
            if (offset < lower || length < 0 || offset > upper || length > upper - offset || upper > _data.Length)
            {
                throw Truncated(what);
            }
        }

        private InvalidDataException Truncated(string what)
            => new InvalidDataException(string.Format(
                CultureInfo.InvariantCulture, "'{0}' is truncated or corrupt: {1} lies outside the file or its section.", _path, what));

        private int U16(long offset)
        {
            CheckRange(offset, 2, 0, _data.Length, "a field");
            return _data[offset] | (_data[offset + 1] << 8);
        }

        private long U32(long offset)
        {
            CheckRange(offset, 4, 0, _data.Length, "a field");
            return (long)((uint)_data[offset]
                | ((uint)_data[offset + 1] << 8)
                | ((uint)_data[offset + 2] << 16)
                | ((uint)_data[offset + 3] << 24));
        }

        private long U64(long offset)
        {
            CheckRange(offset, 8, 0, _data.Length, "a field");
            ulong low = (ulong)U32(offset);
            ulong high = (ulong)U32(offset + 4);
            ulong value = low | (high << 32);
            if (value > long.MaxValue)
            {
                throw Truncated("a 64-bit offset or size");
            }

            return (long)value;
        }
    }
}

#if !CA_NO_MSBUILD
/// <summary>
/// MSBuild task: marks the requirement on <see cref="Version"/> weak in each of <see cref="Files"/>
/// (TorchSharp's <c>libLibTorchSharp.so</c> in a build or publish output), so that the library loads with
/// an older libstdc++. It patches whatever the build machine's libstdc++ is: what matters is the machine
/// the output runs on, and a weak requirement is harmless where the version exists.
/// </summary>
public sealed class PatchLibStdCxxRequirement : Microsoft.Build.Utilities.Task
{
    /// <summary>The native libraries to patch; missing files are skipped.</summary>
    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

    /// <summary>The version requirement to weaken; <c>GLIBCXX_3.4.32</c> unless set.</summary>
    public string Version { get; set; } = "GLIBCXX_3.4.32";

    /// <summary>
    /// The libstdc++ to report as the build machine's (default: the system's, found with <c>ldconfig</c>).
    /// It only changes the message: the files are patched either way.
    /// </summary>
    public string? BuildMachineLibStdCxx { get; set; }

    /// <inheritdoc />
    public override bool Execute()
    {
        string current = "(none)";
        try
        {
            if (string.IsNullOrEmpty(Version))
            {
                Log.LogError("CustomAutograd: PatchLibStdCxxRequirement needs a Version.");
                return false;
            }

            string buildMachine = DescribeBuildMachine();
            foreach (Microsoft.Build.Framework.ITaskItem item in Files ?? Array.Empty<Microsoft.Build.Framework.ITaskItem>())
            {
                current = item.GetMetadata("FullPath");
                if (string.IsNullOrEmpty(current))
                {
                    current = item.ItemSpec;
                }

                if (!File.Exists(current))
                {
                    Log.LogMessage(Microsoft.Build.Framework.MessageImportance.Low, "CustomAutograd: {0} does not exist; skipped.", current);
                    continue;
                }

                int changed = ElfSymbolVersions.WeakenRequirement(current, Version);
                Log.LogMessage(
                    changed > 0 ? Microsoft.Build.Framework.MessageImportance.High : Microsoft.Build.Framework.MessageImportance.Low,
                    changed > 0
                        ? "CustomAutograd: weakened the {0} requirement of {1}, so TorchSharp loads with older libstdc++ versions too ({2}; set CustomAutogradLibStdCxxCompat=false to disable)"
                        : "CustomAutograd: {1} has no strong {0} requirement; unchanged ({2})",
                    Version,
                    current,
                    buildMachine);
            }

            return !Log.HasLoggedErrors;
        }
        catch (Exception ex)
        {
            Log.LogError(
                "CustomAutograd: could not weaken the {0} requirement of {1}: {2} (set CustomAutogradLibStdCxxCompat=false to disable this step)",
                Version,
                current,
                ex.Message);
            return false;
        }
    }

    private string DescribeBuildMachine()
    {
        string? library = string.IsNullOrEmpty(BuildMachineLibStdCxx) ? ElfSymbolVersions.FindSystemLibStdCxx() : BuildMachineLibStdCxx;
        if (library == null)
        {
            return "no libstdc++ on this build machine";
        }

        bool provides = false;
        foreach (string name in ElfSymbolVersions.ReadDefinitions(library))
        {
            provides |= string.Equals(name, Version, StringComparison.Ordinal);
        }

        return string.Format(
            CultureInfo.InvariantCulture,
            "this build machine's libstdc++ {0} {1} it, which does not matter where the output runs",
            library,
            provides ? "provides" : "lacks");
    }
}
#endif
