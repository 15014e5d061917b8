// SPDX-License-Identifier: MIT
using System.IO;
using System.Text;
using Spectre.Console;

namespace CustomAutograd.Examples;

/// <summary>A TextWriter that prints through Spectre.Console, so lines appear above a live progress bar.</summary>
internal sealed class AnsiConsoleWriter : TextWriter
{
    public override Encoding Encoding => Encoding.UTF8;

    public override void WriteLine(string? value) => AnsiConsole.WriteLine(value ?? string.Empty);

    public override void Write(char value) => AnsiConsole.Write(value.ToString());
}
