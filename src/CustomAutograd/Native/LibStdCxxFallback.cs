// SPDX-License-Identifier: MIT
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using CustomAutograd.Build;
using TorchSharp;

namespace CustomAutograd.Native;

// Start-up fallback for TorchSharp's native library on Linux systems whose libstdc++ predates GCC 13 (Debian 12,
// Ubuntu 22.04), for outputs that the build step (build/LibStdCxxCompat.targets) did not patch, such as a project
// that references CustomAutograd's project without importing build/CustomAutograd.targets. When
// libLibTorchSharp.so fails to load because it requires Version, a copy with that requirement
// marked weak is written once to a cache folder and loaded before TorchSharp's first call; TorchSharp's own load
// by name then finds it by its soname. It can only help when CustomAutograd is used before TorchSharp's first
// call (afterwards TorchSharp has already failed); CUSTOMAUTOGRAD_LIBSTDCXX_FALLBACK=0 turns it off.
internal static class LibStdCxxFallback
{
    // The version requirement that is weakened.
    internal const string Version = "GLIBCXX_3.4.32";

    // Set to 0 to turn the fallback off.
    internal const string SwitchVariable = "CUSTOMAUTOGRAD_LIBSTDCXX_FALLBACK";

    private const string LibraryFile = "libLibTorchSharp.so";

    // The patched copy that was loaded, or null.
    internal static string? PatchedCopy { get; private set; }

    // Why the fallback could not help, when it tried; otherwise null.
    internal static string? Failure { get; private set; }

    // Runs once, before TorchSharp's first call; never throws.
    internal static void Apply()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(SwitchVariable) == "0")
            return;
        // The same search as TorchSharp's own; nothing to do when it works (the usual case).
        if (NativeLibrary.TryLoad("LibTorchSharp", typeof(torch).Assembly, null, out _))
            return;
        string? original = FindLibTorchSharp();
        if (original is null || LoadError(original) is not string error || !error.Contains(Version, StringComparison.Ordinal))
            return;
        try
        {
            string copy = EnsurePatchedCopy(original, CacheRoot());
            // The copy's $ORIGIN is the cache folder: load the libtorch it needs from beside the original first
            // (libtorch.so brings libtorch_cpu.so and libc10.so); the copy's dependencies then resolve by soname.
            string libtorch = Path.Combine(Path.GetDirectoryName(original)!, "libtorch.so");
            if (File.Exists(libtorch))
                NativeLibrary.TryLoad(libtorch, out _);
            NativeLibrary.Load(copy);
            PatchedCopy = copy;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidDataException or DllNotFoundException or BadImageFormatException)
        {
            Failure = e.Message;
        }
    }

    // The message for TorchSharp's failure to load, with the one-line fix when the cause is libstdc++'s version.
    internal static string LoadFailureMessage(Exception torchSharpError)
    {
        string? original = OperatingSystem.IsLinux() ? FindLibTorchSharp() : null;
        string? loadError = original is null ? null : LoadError(original);
        if (loadError is null || !loadError.Contains(Version, StringComparison.Ordinal))
        {
            return "TorchSharp could not load its native library (" + torchSharpError.Message + "). Reference a libtorch " +
                   "package, e.g. <PackageReference Include=\"TorchSharp-cpu\" Version=\"0.107.0\" />.";
        }
        string reason = Array.Find(loadError.Split('\n'), line => line.Contains(Version, StringComparison.Ordinal))!.Trim();
        return "TorchSharp's native library " + original + " requires " + Version + ", which this system's libstdc++ " +
               "lacks (" + reason + ")" + (Failure is null ? "" : "; CustomAutograd could not load a patched copy: " + Failure) +
               ". The one-line fix, in the project file of a project that references src/CustomAutograd/CustomAutograd.csproj: " +
               "<Import Project=\"<CustomAutograd repository>/build/CustomAutograd.targets\" /> (the CustomAutograd package " +
               "has it already, unless CustomAutogradLibStdCxxCompat is false). Also, use CustomAutograd before TorchSharp's " +
               "first call, or unset " + SwitchVariable + ", so that CustomAutograd can load a patched copy by itself.";
    }

    // Returns the patched copy of original under cacheRoot, writing it first if
    // needed. The folder is named after the original's content hash, and the copy is moved into place only once
    // patched, so concurrent processes and later runs share it safely.
    internal static string EnsurePatchedCopy(string original, string cacheRoot)
    {
        string hash;
        using (FileStream stream = File.OpenRead(original))
            hash = Convert.ToHexString(SHA256.HashData(stream)).Substring(0, 16).ToLowerInvariant();
        string directory = Path.Combine(cacheRoot, "libstdcxx-compat", hash);
        string copy = Path.Combine(directory, LibraryFile);
        if (File.Exists(copy))
            return copy;
        Directory.CreateDirectory(directory);
        string temporary = Path.Combine(directory, "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            File.Copy(original, temporary);
            ElfSymbolVersions.WeakenRequirement(temporary, Version);
            try
            {
                File.Move(temporary, copy, overwrite: false);
            }
            catch (IOException) when (File.Exists(copy))
            {
                // Another process put its (identical) copy in place first.
            }
        }
        finally
        {
            if (File.Exists(temporary))
                File.Delete(temporary);
        }
        return copy;
    }

    // The cache folder: $XDG_CACHE_HOME/customautograd, ~/.cache/customautograd or the temporary folder's.
    internal static string CacheRoot()
    {
        string? root = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (string.IsNullOrEmpty(root))
        {
            string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
            root = string.IsNullOrEmpty(home) ? Path.GetTempPath() : Path.Combine(home, ".cache");
        }
        return Path.Combine(root, "customautograd");
    }

    // The libLibTorchSharp.so that TorchSharp's load by name would try first, or null.
    internal static string? FindLibTorchSharp()
    {
        string searchPath = AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string ?? string.Empty;
        foreach (string directory in searchPath.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(directory, LibraryFile);
            if (File.Exists(candidate))
                return candidate;
        }
        string? assemblyDirectory = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        string? beside = string.IsNullOrEmpty(assemblyDirectory) ? null : Path.Combine(assemblyDirectory, LibraryFile);
        return beside is not null && File.Exists(beside) ? beside : null;
    }

    private static string? LoadError(string path)
    {
        try
        {
            NativeLibrary.Free(NativeLibrary.Load(path));
            return null;
        }
        catch (DllNotFoundException e)
        {
            return e.Message;
        }
    }
}
