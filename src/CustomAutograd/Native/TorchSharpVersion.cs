// SPDX-License-Identifier: MIT
using System;
using TorchSharp;

namespace CustomAutograd.Native;

// The start-up check that the TorchSharp in use is the one whose LibTorchSharp and libtorch the shim's
// assumptions were checked against (docs/architecture.md, "External assumptions").
internal static class TorchSharpVersion
{
    // The TorchSharp series checked (any 0.107.x passes).
    internal const string Checked = "0.107";

    // The libtorch that TorchSharp 0.107 ships with.
    internal const string CheckedLibTorch = "2.10";

    // The AppContext switch that lets another TorchSharp version start (at the user's risk); the shim's other
    // start-up checks (exports, ABI version, tensor layout) still run.
    internal const string AllowUntestedSwitch = "CustomAutograd.AllowUntestedTorchSharp";

    // Throws CustomAutogradException when the loaded TorchSharp is not 0.107.x (unless allowed).
    internal static void Verify()
    {
        bool allowed = AppContext.TryGetSwitch(AllowUntestedSwitch, out bool on) && on;
        string? problem = Problem(typeof(torch).Assembly.GetName().Version, allowed);
        if (problem is not null)
            throw new CustomAutogradException(problem);
    }

    // Why loaded is refused, or null when it is accepted.
    internal static string? Problem(Version? loaded, bool allowUntested)
    {
        if (allowUntested || loaded is { Major: 0, Minor: 107 })
            return null;
        return "CustomAutograd was checked against TorchSharp " + Checked + ".x (LibTorchSharp's autograd-node ABI, " +
               "libtorch " + CheckedLibTorch + "), but the loaded TorchSharp is " + (loaded?.ToString() ?? "of unknown version") +
               ". Reference TorchSharp " + Checked + ".x (the CustomAutograd package pins 0.107.0). Another version can " +
               "change the struct layouts, exports and libtorch symbols the native shim relies on; docs/architecture.md " +
               "lists them under \"What a TorchSharp upgrade requires\". To try it anyway, at your own risk, set the " +
               "AppContext switch \"" + AllowUntestedSwitch + "\" to true.";
    }
}
