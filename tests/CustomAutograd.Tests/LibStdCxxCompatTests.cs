// SPDX-License-Identifier: MIT

using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using CustomAutograd.Build;
using CustomAutograd.Native;
using NUnit.Framework;

namespace CustomAutograd.Tests;

/// <summary>
/// Tests of the ELF symbol-version logic behind the build step that lets TorchSharp's native library load
/// with an older system libstdc++ (build/tasks/LibStdCxxCompat.cs), and of the library's start-up fallback
/// that uses it (Native/LibStdCxxFallback.cs).
/// </summary>
[TestFixture]
public sealed class LibStdCxxCompatTests
{
    private const string Patched = "GLIBCXX_3.4.32";

    private string _directory = string.Empty;

    [SetUp]
    public void SetUp()
    {
        _directory = Path.Combine(Path.GetTempPath(), "ca-elf-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_directory);
    }

    [TearDown]
    public void TearDown()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Test]
    public void ReadRequirements_SyntheticLibrary_ListsEveryRequirement()
    {
        string path = WriteSynthetic(SyntheticElf.Build());

        IReadOnlyList<VersionRequirement> requirements = ElfSymbolVersions.ReadRequirements(path);

        Assert.That(
            requirements.Select(r => r.FileName + ":" + r.VersionName),
            Is.EqualTo(new[] { "libstdc++.so.6:GLIBCXX_3.4.30", "libstdc++.so.6:GLIBCXX_3.4.32", "libc.so.6:GLIBC_2.34" }));
        Assert.That(requirements.Select(r => r.Flags), Is.All.EqualTo(0));
        Assert.That(requirements.Select(r => r.IsWeak), Is.All.False);
    }

    [Test]
    public void WeakenRequirement_StrongVersion_SetsOnlyThatEntrysWeakFlag()
    {
        SyntheticElf elf = SyntheticElf.Build();
        string path = WriteSynthetic(elf);

        int changed = ElfSymbolVersions.WeakenRequirement(path, Patched);

        byte[] after = File.ReadAllBytes(path);
        Assert.That(changed, Is.EqualTo(1));
        Assert.That(after, Has.Length.EqualTo(elf.Bytes.Length));
        Assert.That(DifferingOffsets(elf.Bytes, after), Is.EqualTo(new[] { elf.Glibcxx3432FlagsOffset }));
        Assert.That(after[elf.Glibcxx3432FlagsOffset], Is.EqualTo(ElfSymbolVersions.VerFlagWeak));
        Assert.That(
            ElfSymbolVersions.ReadRequirements(path).Where(r => r.IsWeak).Select(r => r.VersionName),
            Is.EqualTo(new[] { Patched }));
    }

    [Test]
    public void WeakenRequirement_CalledTwice_ReturnsZeroAndLeavesFileUnchanged()
    {
        string path = WriteSynthetic(SyntheticElf.Build());

        int first = ElfSymbolVersions.WeakenRequirement(path, Patched);
        byte[] afterFirst = File.ReadAllBytes(path);
        int second = ElfSymbolVersions.WeakenRequirement(path, Patched);

        Assert.That(first, Is.EqualTo(1));
        Assert.That(second, Is.Zero);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(afterFirst));
    }

    [Test]
    public void WeakenRequirement_AbsentVersion_ReturnsZeroAndLeavesFileUnchanged()
    {
        SyntheticElf elf = SyntheticElf.Build();
        string path = WriteSynthetic(elf);
        DateTime before = File.GetLastWriteTimeUtc(path);

        int changed = ElfSymbolVersions.WeakenRequirement(path, "GLIBCXX_3.4.99");

        Assert.That(changed, Is.Zero);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(elf.Bytes));
        Assert.That(File.GetLastWriteTimeUtc(path), Is.EqualTo(before));
        Assert.That(Directory.GetFiles(_directory), Has.Length.EqualTo(1), "no temporary file is left behind");
    }

    [Test]
    public void WeakenRequirement_PatchedFile_KeepsLastWriteTimeAndLeavesNoTemporaryFile()
    {
        string path = WriteSynthetic(SyntheticElf.Build());
        var stamp = new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(path, stamp);

        ElfSymbolVersions.WeakenRequirement(path, Patched);

        Assert.That(File.GetLastWriteTimeUtc(path), Is.EqualTo(stamp));
        Assert.That(Directory.GetFiles(_directory), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void WeakenRequirement_HardLinkedFile_LeavesOtherLinkUnchanged()
    {
        Assume.That(RuntimeInformation.IsOSPlatform(OSPlatform.Linux), "hard links are made with ln here");
        SyntheticElf elf = SyntheticElf.Build();
        string original = WriteSynthetic(elf);
        string linked = Path.Combine(_directory, "linked.so");
        Assume.That(RunLn(original, linked), Is.True, "ln could not make a hard link");

        int changed = ElfSymbolVersions.WeakenRequirement(linked, Patched);

        Assert.That(changed, Is.EqualTo(1));
        Assert.That(File.ReadAllBytes(original), Is.EqualTo(elf.Bytes), "the other name of the file is untouched");
        Assert.That(File.ReadAllBytes(linked)[elf.Glibcxx3432FlagsOffset], Is.EqualTo(ElfSymbolVersions.VerFlagWeak));
    }

    [Test]
    public void ReadDefinitions_SyntheticLibrary_ListsDefinedVersionsWithoutTheBaseEntry()
    {
        string path = WriteSynthetic(SyntheticElf.Build());

        IReadOnlyList<string> definitions = ElfSymbolVersions.ReadDefinitions(path);

        Assert.That(definitions, Is.EqualTo(new[] { "TEST_1.0", "TEST_2.0" }));
    }

    [Test]
    public void ReadRequirements_NonElfFile_ThrowsInvalidDataExceptionNamingTheFile()
    {
        string path = Path.Combine(_directory, "not-elf.so");
        File.WriteAllText(path, "this is not an ELF file, just text that is long enough to have a header");

        InvalidDataException? error = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadRequirements(path));

        Assert.That(error?.Message, Does.Contain(path));
    }

    [Test]
    public void WeakenRequirement_NonElfFile_ThrowsAndLeavesFileUnchanged()
    {
        string path = Path.Combine(_directory, "not-elf.so");
        byte[] content = Encoding.ASCII.GetBytes("#!/bin/sh\necho not an ELF file\n");
        File.WriteAllBytes(path, content);

        Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.WeakenRequirement(path, Patched));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(content));
    }

    [Test]
    public void ReadRequirements_Elf32File_ThrowsInvalidDataException()
    {
        byte[] bytes = SyntheticElf.Build().Bytes;
        bytes[4] = 1; // ELFCLASS32
        string path = WriteSynthetic(bytes);

        InvalidDataException? error = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadRequirements(path));

        Assert.That(error?.Message, Does.Contain(path).And.Contain("64-bit"));
    }

    [Test]
    public void ReadRequirements_BigEndianFile_ThrowsInvalidDataException()
    {
        byte[] bytes = SyntheticElf.Build().Bytes;
        bytes[5] = 2; // ELFDATA2MSB
        string path = WriteSynthetic(bytes);

        InvalidDataException? error = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadRequirements(path));

        Assert.That(error?.Message, Does.Contain(path).And.Contain("little-endian"));
    }

    [Test]
    public void ReadRequirements_TruncatedFile_ThrowsInvalidDataException()
    {
        byte[] bytes = SyntheticElf.Build().Bytes;
        string path = WriteSynthetic(bytes.Take(bytes.Length - 20).ToArray());

        InvalidDataException? error = Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadRequirements(path));

        Assert.That(error?.Message, Does.Contain(path).And.Contain("truncated"));
    }

    [Test]
    public void ReadRequirements_VerneedPointingPastItsSection_ThrowsInvalidDataException()
    {
        SyntheticElf elf = SyntheticElf.Build();
        byte[] bytes = elf.Bytes;
        // vn_next of the second Verneed record: make it point far beyond the section.
        BitConverter.GetBytes(0x10000).CopyTo(bytes, elf.VerneedOffset + 48 + 12);
        BitConverter.GetBytes(3).CopyTo(bytes, elf.VerneedSectionHeaderOffset + 44); // sh_info: 3 records
        string path = WriteSynthetic(bytes);

        Assert.Throws<InvalidDataException>(() => ElfSymbolVersions.ReadRequirements(path));
    }

    [Test]
    public void FindSystemLibStdCxx_OnLinux_FindsALibraryThatDefinesBaseVersion()
    {
        Assume.That(RuntimeInformation.IsOSPlatform(OSPlatform.Linux), "Linux only");

        string? library = ElfSymbolVersions.FindSystemLibStdCxx();

        Assume.That(library, Is.Not.Null, "no libstdc++.so.6 on this system");
        Assert.That(File.Exists(library), Is.True);
        Assert.That(ElfSymbolVersions.ReadDefinitions(library!), Does.Contain("GLIBCXX_3.4"));
        Assert.That(ElfSymbolVersions.SystemProvides("GLIBCXX_3.4"), Is.True);
        Assert.That(ElfSymbolVersions.SystemProvides("GLIBCXX_99.0"), Is.False);
    }

    [Test]
    public void WeakenRequirement_RealLibTorchSharpCopy_MarksOnlyGlibcxx3432Weak()
    {
        string? source = FindNuGetLibTorchSharp();
        if (source == null)
        {
            Assert.Ignore("TorchSharp 0.107.0's libLibTorchSharp.so is not in the NuGet package cache.");
            return;
        }

        string sourceHash = Sha256(source);
        string copy = Path.Combine(_directory, "libLibTorchSharp.so");
        File.Copy(source, copy);
        byte[] before = File.ReadAllBytes(copy);

        int changed = ElfSymbolVersions.WeakenRequirement(copy, Patched);

        IReadOnlyList<VersionRequirement> requirements = ElfSymbolVersions.ReadRequirements(copy);
        byte[] after = File.ReadAllBytes(copy);
        Assert.That(changed, Is.EqualTo(1));
        Assert.That(
            requirements.Where(r => r.IsWeak).Select(r => r.FileName + ":" + r.VersionName),
            Is.EqualTo(new[] { "libstdc++.so.6:" + Patched }));
        Assert.That(requirements, Has.Count.GreaterThan(10));
        Assert.That(after, Has.Length.EqualTo(before.Length));
        Assert.That(DifferingOffsets(before, after), Has.Length.EqualTo(1));
        Assert.That(ElfSymbolVersions.WeakenRequirement(copy, Patched), Is.Zero);
        Assert.That(Sha256(source), Is.EqualTo(sourceHash), "the package cache's file is never modified");
    }

    [Test]
    public void EnsurePatchedCopy_StrongRequirement_WritesOneWeakCopyNamedByContentAndLeavesTheOriginal()
    {
        SyntheticElf elf = SyntheticElf.Build();
        string original = WriteSynthetic(elf);
        string cache = Path.Combine(_directory, "cache");

        string copy = LibStdCxxFallback.EnsurePatchedCopy(original, cache);
        DateTime written = File.GetLastWriteTimeUtc(copy);
        string again = LibStdCxxFallback.EnsurePatchedCopy(original, cache);

        Assert.That(Path.GetFileName(copy), Is.EqualTo("libLibTorchSharp.so"));
        Assert.That(Path.GetDirectoryName(Path.GetDirectoryName(copy)), Is.EqualTo(Path.Combine(cache, "libstdcxx-compat")));
        Assert.That(Path.GetFileName(Path.GetDirectoryName(copy)), Is.EqualTo(Sha256(original)[..16].ToLowerInvariant()));
        Assert.That(DifferingOffsets(elf.Bytes, File.ReadAllBytes(copy)), Is.EqualTo(new[] { elf.Glibcxx3432FlagsOffset }));
        Assert.That(File.ReadAllBytes(original), Is.EqualTo(elf.Bytes), "the original is never modified");
        Assert.That(again, Is.EqualTo(copy));
        Assert.That(File.GetLastWriteTimeUtc(again), Is.EqualTo(written), "an existing copy is reused, not rewritten");
        Assert.That(Directory.GetFiles(Path.GetDirectoryName(copy)!), Is.EqualTo(new[] { copy }), "no temporary file is left");
    }

    [Test]
    public void EnsurePatchedCopy_DifferentOriginals_GetDifferentFolders()
    {
        string first = WriteSynthetic(SyntheticElf.Build());
        string cache = Path.Combine(_directory, "cache");
        string firstCopy = LibStdCxxFallback.EnsurePatchedCopy(first, cache);
        byte[] other = SyntheticElf.Build().Bytes;
        other[^1] ^= 0xff; // same tables, other content
        string second = Path.Combine(_directory, "other.so");
        File.WriteAllBytes(second, other);

        string secondCopy = LibStdCxxFallback.EnsurePatchedCopy(second, cache);

        Assert.That(secondCopy, Is.Not.EqualTo(firstCopy));
        Assert.That(File.ReadAllBytes(secondCopy)[^1], Is.EqualTo(other[^1]));
    }

    [Test]
    public void EnsurePatchedCopy_NonElfFile_ThrowsAndLeavesNoCopy()
    {
        string original = Path.Combine(_directory, "not-elf.so");
        File.WriteAllText(original, "this is not an ELF file, just text that is long enough to have a header");
        string cache = Path.Combine(_directory, "cache");

        Assert.Throws<InvalidDataException>(() => LibStdCxxFallback.EnsurePatchedCopy(original, cache));
        Assert.That(Directory.GetFiles(cache, "*", SearchOption.AllDirectories), Is.Empty);
    }

    [Test]
    public void Apply_InThisProcess_FindsTheLibraryLoadableAndMakesNoCopy()
    {
        Assume.That(RuntimeInformation.IsOSPlatform(OSPlatform.Linux), "Linux only");

        LibStdCxxFallback.Apply();

        // The build step patched the test output's copy, so the library loads and the fallback is not needed.
        Assert.That(LibStdCxxFallback.FindLibTorchSharp(), Does.EndWith("libLibTorchSharp.so").And.Matches<string>(File.Exists));
        Assert.That(LibStdCxxFallback.PatchedCopy, Is.Null);
        Assert.That(LibStdCxxFallback.Failure, Is.Null);
        Assert.That(
            ElfSymbolVersions.ReadRequirements(LibStdCxxFallback.FindLibTorchSharp()!).Where(r => r.VersionName == Patched).Select(r => r.IsWeak),
            Is.EqualTo(new[] { true }),
            "the test output's copy was patched by the build step");
    }

    [Test]
    public void LoadFailureMessage_WhenTheLibraryLoads_PointsToALibtorchPackage()
    {
        string message = LibStdCxxFallback.LoadFailureMessage(new InvalidOperationException("no libtorch"));

        Assert.That(message, Does.Contain("no libtorch").And.Contain("TorchSharp-cpu"));
    }

    private static string? FindNuGetLibTorchSharp()
    {
        string? root = Environment.GetEnvironmentVariable("NUGET_PACKAGES");
        if (string.IsNullOrEmpty(root))
        {
            root = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        }

        string path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        return File.Exists(path) ? path : null;
    }

    private static string Sha256(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    private static int[] DifferingOffsets(byte[] before, byte[] after)
    {
        var offsets = new List<int>();
        for (int i = 0; i < Math.Min(before.Length, after.Length); i++)
        {
            if (before[i] != after[i])
            {
                offsets.Add(i);
            }
        }

        return offsets.ToArray();
    }

    private static bool RunLn(string target, string link)
    {
        try
        {
            var startInfo = new ProcessStartInfo("ln") { UseShellExecute = false };
            startInfo.ArgumentList.Add(target);
            startInfo.ArgumentList.Add(link);
            using Process? process = Process.Start(startInfo);
            if (process == null)
            {
                return false;
            }

            process.WaitForExit();
            return process.ExitCode == 0 && File.Exists(link);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }

    private string WriteSynthetic(SyntheticElf elf) => WriteSynthetic(elf.Bytes);

    private string WriteSynthetic(byte[] bytes)
    {
        string path = Path.Combine(_directory, "libsynthetic.so");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>
    /// A minimal ELF64 little-endian shared object with section headers only: .shstrtab, .dynstr,
    /// .gnu.version_r (libstdc++.so.6: GLIBCXX_3.4.30, GLIBCXX_3.4.32; libc.so.6: GLIBC_2.34) and
    /// .gnu.version_d (libtest.so as the base entry, TEST_1.0, TEST_2.0 with parent TEST_1.0).
    /// </summary>
    private sealed class SyntheticElf
    {
        private SyntheticElf(byte[] bytes, int verneedOffset, int verneedSectionHeaderOffset, int glibcxx3432FlagsOffset)
        {
            Bytes = bytes;
            VerneedOffset = verneedOffset;
            VerneedSectionHeaderOffset = verneedSectionHeaderOffset;
            Glibcxx3432FlagsOffset = glibcxx3432FlagsOffset;
        }

        /// <summary>The file's content (a fresh array per <see cref="Build"/>).</summary>
        public byte[] Bytes { get; }

        /// <summary>File offset of the .gnu.version_r section's content.</summary>
        public int VerneedOffset { get; }

        /// <summary>File offset of the .gnu.version_r section's header.</summary>
        public int VerneedSectionHeaderOffset { get; }

        /// <summary>File offset of the vna_flags field of the GLIBCXX_3.4.32 entry.</summary>
        public int Glibcxx3432FlagsOffset { get; }

        public static SyntheticElf Build()
        {
            // Section name table.
            var shstrtab = new StringTable();
            int nameShstrtab = shstrtab.Add(".shstrtab");
            int nameDynstr = shstrtab.Add(".dynstr");
            int nameVerneed = shstrtab.Add(".gnu.version_r");
            int nameVerdef = shstrtab.Add(".gnu.version_d");

            // Dynamic string table.
            var dynstr = new StringTable();
            int libstdcxx = dynstr.Add("libstdc++.so.6");
            int glibcxx30 = dynstr.Add("GLIBCXX_3.4.30");
            int glibcxx32 = dynstr.Add(Patched);
            int libc = dynstr.Add("libc.so.6");
            int glibc234 = dynstr.Add("GLIBC_2.34");
            int soname = dynstr.Add("libtest.so");
            int test1 = dynstr.Add("TEST_1.0");
            int test2 = dynstr.Add("TEST_2.0");

            // .gnu.version_r: two Verneed records, each followed by its Vernaux entries.
            var verneed = new MemoryStream();
            using (var w = new BinaryWriter(verneed, Encoding.ASCII, leaveOpen: true))
            {
                WriteVerneed(w, count: 2, file: libstdcxx, aux: 16, next: 48);
                WriteVernaux(w, "GLIBCXX_3.4.30", flags: 0, other: 2, name: glibcxx30, next: 16);
                WriteVernaux(w, Patched, flags: 0, other: 3, name: glibcxx32, next: 0);
                WriteVerneed(w, count: 1, file: libc, aux: 16, next: 0);
                WriteVernaux(w, "GLIBC_2.34", flags: 0, other: 4, name: glibc234, next: 0);
            }

            // .gnu.version_d: the base entry (the file's own name) and two versions.
            var verdef = new MemoryStream();
            using (var w = new BinaryWriter(verdef, Encoding.ASCII, leaveOpen: true))
            {
                WriteVerdef(w, "libtest.so", flags: 1, index: 1, count: 1, next: 28);
                WriteVerdaux(w, soname, next: 0);
                WriteVerdef(w, "TEST_1.0", flags: 0, index: 2, count: 1, next: 28);
                WriteVerdaux(w, test1, next: 0);
                WriteVerdef(w, "TEST_2.0", flags: 0, index: 3, count: 2, next: 0);
                WriteVerdaux(w, test2, next: 8);
                WriteVerdaux(w, test1, next: 0);
            }

            // Layout: header, .shstrtab, .dynstr, .gnu.version_r, .gnu.version_d, section header table.
            const int headerSize = 64;
            int shstrtabOffset = headerSize;
            int dynstrOffset = shstrtabOffset + shstrtab.Length;
            int verneedOffset = Align(dynstrOffset + dynstr.Length, 8);
            int verdefOffset = Align(verneedOffset + (int)verneed.Length, 8);
            int sectionHeadersOffset = Align(verdefOffset + (int)verdef.Length, 8);
            const int sectionCount = 5;

            var file = new MemoryStream();
            using (var w = new BinaryWriter(file, Encoding.ASCII, leaveOpen: true))
            {
                // ELF header.
                w.Write(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0 });
                w.Write((ushort)3);                     // e_type: ET_DYN
                w.Write((ushort)62);                    // e_machine: EM_X86_64
                w.Write(1u);                            // e_version
                w.Write(0UL);                           // e_entry
                w.Write(0UL);                           // e_phoff
                w.Write((ulong)sectionHeadersOffset);   // e_shoff
                w.Write(0u);                            // e_flags
                w.Write((ushort)headerSize);            // e_ehsize
                w.Write((ushort)56);                    // e_phentsize
                w.Write((ushort)0);                     // e_phnum
                w.Write((ushort)64);                    // e_shentsize
                w.Write((ushort)sectionCount);          // e_shnum
                w.Write((ushort)1);                     // e_shstrndx

                PadTo(w, shstrtabOffset);
                w.Write(shstrtab.ToArray());
                PadTo(w, dynstrOffset);
                w.Write(dynstr.ToArray());
                PadTo(w, verneedOffset);
                w.Write(verneed.ToArray());
                PadTo(w, verdefOffset);
                w.Write(verdef.ToArray());
                PadTo(w, sectionHeadersOffset);

                const uint shtStrtab = 3;
                const ulong shfAlloc = 2;
                WriteSectionHeader(w, 0, 0, 0, 0, 0, 0, 0, 0, 0);
                WriteSectionHeader(w, nameShstrtab, shtStrtab, 0, shstrtabOffset, shstrtab.Length, 0, 0, 1, 0);
                WriteSectionHeader(w, nameDynstr, shtStrtab, shfAlloc, dynstrOffset, dynstr.Length, 0, 0, 1, 0);
                WriteSectionHeader(w, nameVerneed, ElfSymbolVersions.ShtGnuVerneed, shfAlloc, verneedOffset, (int)verneed.Length, 2, 2, 8, 0);
                WriteSectionHeader(w, nameVerdef, ElfSymbolVersions.ShtGnuVerdef, shfAlloc, verdefOffset, (int)verdef.Length, 2, 3, 8, 0);
            }

            // The second Vernaux of the first Verneed: 16 (Verneed) + 16 (first Vernaux) + 4 (vna_hash).
            int flagsOffset = verneedOffset + 16 + 16 + 4;
            int verneedHeader = sectionHeadersOffset + (3 * 64);
            return new SyntheticElf(file.ToArray(), verneedOffset, verneedHeader, flagsOffset);
        }

        private static void WriteVerneed(BinaryWriter w, ushort count, int file, uint aux, uint next)
        {
            w.Write((ushort)1);     // vn_version
            w.Write(count);         // vn_cnt
            w.Write((uint)file);    // vn_file
            w.Write(aux);           // vn_aux
            w.Write(next);          // vn_next
        }

        private static void WriteVernaux(BinaryWriter w, string version, ushort flags, ushort other, int name, uint next)
        {
            w.Write(ElfHash(version));  // vna_hash
            w.Write(flags);             // vna_flags
            w.Write(other);             // vna_other
            w.Write((uint)name);        // vna_name
            w.Write(next);              // vna_next
        }

        private static void WriteVerdef(BinaryWriter w, string name, ushort flags, ushort index, ushort count, uint next)
        {
            w.Write((ushort)1);     // vd_version
            w.Write(flags);         // vd_flags
            w.Write(index);         // vd_ndx
            w.Write(count);         // vd_cnt
            w.Write(ElfHash(name)); // vd_hash
            w.Write(20u);           // vd_aux
            w.Write(next);          // vd_next
        }

        private static void WriteVerdaux(BinaryWriter w, int name, uint next)
        {
            w.Write((uint)name);    // vda_name
            w.Write(next);          // vda_next
        }

        private static void WriteSectionHeader(
            BinaryWriter w, int name, uint type, ulong flags, int offset, int size, int link, int info, ulong align, ulong entrySize)
        {
            w.Write((uint)name);    // sh_name
            w.Write(type);          // sh_type
            w.Write(flags);         // sh_flags
            w.Write(0UL);           // sh_addr
            w.Write((ulong)offset); // sh_offset
            w.Write((ulong)size);   // sh_size
            w.Write((uint)link);    // sh_link
            w.Write((uint)info);    // sh_info
            w.Write(align);         // sh_addralign
            w.Write(entrySize);     // sh_entsize
        }

        private static void WriteSectionHeader(
            BinaryWriter w, int name, int type, ulong flags, int offset, int size, int link, int info, ulong align, ulong entrySize)
            => WriteSectionHeader(w, name, unchecked((uint)type), flags, offset, size, link, info, align, entrySize);

        private static void PadTo(BinaryWriter w, int offset)
        {
            w.Flush();
            while (w.BaseStream.Position < offset)
            {
                w.Write((byte)0);
            }
        }

        private static int Align(int value, int alignment) => (value + alignment - 1) / alignment * alignment;

        /// <summary>The System V ELF hash, as stored in vna_hash and vd_hash.</summary>
        private static uint ElfHash(string name)
        {
            uint h = 0;
            foreach (byte c in Encoding.ASCII.GetBytes(name))
            {
                h = (h << 4) + c;
                uint g = h & 0xf0000000;
                if (g != 0)
                {
                    h ^= g >> 24;
                }

                h &= ~g;
            }

            return h;
        }
    }

    /// <summary>An ELF string table under construction: starts with the empty string.</summary>
    private sealed class StringTable
    {
        private readonly List<byte> _bytes = new() { 0 };

        public int Length => _bytes.Count;

        public int Add(string value)
        {
            int offset = _bytes.Count;
            _bytes.AddRange(Encoding.ASCII.GetBytes(value));
            _bytes.Add(0);
            return offset;
        }

        public byte[] ToArray() => _bytes.ToArray();
    }
}
