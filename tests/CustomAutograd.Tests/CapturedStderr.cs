// SPDX-License-Identifier: MIT
using System;
using System.IO;
using System.Runtime.InteropServices;

namespace CustomAutograd.Tests;

/// <summary>
/// Redirects the process's standard error (file descriptor 2, where libtorch writes its warnings) to a temporary
/// file until disposed, so that a test that provokes a warning on purpose can assert it instead of flooding the
/// test output.
/// </summary>
internal sealed partial class CapturedStderr : IDisposable
{
    private const int StderrFd = 2;
    private readonly string _path;
    private readonly int _saved;
    private string? _text;

    internal CapturedStderr()
    {
        Console.Error.Flush();
        _path = Path.GetTempFileName();
        using (FileStream file = File.Open(_path, FileMode.Truncate, FileAccess.Write, FileShare.ReadWrite))
        {
            _saved = Dup(StderrFd);
            if (_saved < 0 || Dup2((int)file.SafeFileHandle.DangerousGetHandle(), StderrFd) < 0)
                throw new IOException("could not redirect standard error: errno " + Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>What was written to standard error while capturing (available after Dispose).</summary>
    internal string Text => _text ?? throw new InvalidOperationException("Dispose the capture first.");

    public void Dispose()
    {
        if (_text is not null)
            return;
        Console.Error.Flush();
        if (Dup2(_saved, StderrFd) < 0 | Close(_saved) < 0)
            throw new IOException("could not restore standard error: errno " + Marshal.GetLastPInvokeError());
        _text = File.ReadAllText(_path);
        File.Delete(_path);
    }

    [LibraryImport("libc", EntryPoint = "dup", SetLastError = true)]
    private static partial int Dup(int fd);

    [LibraryImport("libc", EntryPoint = "dup2", SetLastError = true)]
    private static partial int Dup2(int from, int to);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);
}
