// SPDX-License-Identifier: MIT
using System;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace CustomAutograd.Examples;

/// <summary>Command line of the tutorial.</summary>
/// <param name="Device">"cpu" or "cuda".</param>
/// <param name="Seed">The random seed.</param>
/// <param name="Steps">Training steps.</param>
/// <param name="PlotPath">Where to write the loss curve (PNG), or null.</param>
/// <param name="Progress">Show a progress bar when the output is a terminal.</param>
public sealed record TutorialOptions(string Device, long Seed, int Steps, string? PlotPath = null, bool Progress = true)
{
    /// <summary>The usage line.</summary>
    public const string Usage = "usage: TwoLayerNet [--device cpu|cuda] [--seed N] [--steps N] [--plot loss.png] [--no-progress]";

    /// <summary>Parses the command line; prints usage and returns null when it is wrong or help was asked.</summary>
    /// <param name="args">The arguments.</param>
    /// <returns>The options, or null.</returns>
    public static TutorialOptions? Parse(string[] args)
    {
        string device = "cpu";
        long seed = 7;
        int steps = 500;
        string? plot = null;
        bool progress = true;
        for (int i = 0; i < args.Length; i++)
        {
            string? value = i + 1 < args.Length ? args[i + 1] : null;
            switch (args[i])
            {
                case "--device" when value is "cpu" or "cuda":
                    device = value;
                    i++;
                    break;
                case "--seed" when long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long s):
                    seed = s;
                    i++;
                    break;
                case "--steps" when int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n > 0:
                    steps = n;
                    i++;
                    break;
                case "--plot" when !string.IsNullOrEmpty(value):
                    plot = value;
                    i++;
                    break;
                case "--no-progress":
                    progress = false;
                    break;
                case "-h" or "--help":
                    Console.WriteLine(Usage);
                    return null;
                default:
                    Console.Error.WriteLine($"unknown or incomplete argument '{args[i]}'");
                    Console.Error.WriteLine(Usage);
                    return null;
            }
        }
        return new TutorialOptions(device, seed, steps, plot, progress);
    }

    /// <summary>Initialises CUDA and returns its device; throws when TorchSharp reports none.</summary>
    /// <returns>The CUDA device.</returns>
    public static Device CudaDevice()
    {
        torch.InitializeDeviceType(DeviceType.CUDA);
        if (!cuda.is_available())
            throw new InvalidOperationException("--device cuda was given, but TorchSharp reports no CUDA device.");
        return CUDA;
    }
}

/// <summary>Formats numbers as R's <c>cat</c> does (7 significant digits, fixed or scientific, whichever is shorter).</summary>
public static class RFormat
{
    /// <summary>Formats a number.</summary>
    /// <param name="value">The number.</param>
    /// <returns>Its text.</returns>
    public static string Number(double value)
    {
        if (double.IsNaN(value))
            return "NaN";
        if (double.IsInfinity(value))
            return value > 0 ? "Inf" : "-Inf";
        if (value == 0)
            return "0";
        string sci = Scientific(value);
        string fix = Fixed(value);
        return fix.Length <= sci.Length ? fix : sci;
    }

    private static string Scientific(double value)
    {
        string s = value.ToString("E6", CultureInfo.InvariantCulture); // d.ddddddE+xxx
        int e = s.IndexOf('E', StringComparison.Ordinal);
        string mantissa = s[..e].TrimEnd('0').TrimEnd('.');
        int exponent = int.Parse(s[(e + 1)..], CultureInfo.InvariantCulture);
        return mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }

    private static string Fixed(double value)
    {
        int magnitude = (int)Math.Floor(Math.Log10(Math.Abs(value)));
        int decimals = Math.Max(0, 6 - magnitude);
        double rounded = Math.Round(value, Math.Min(decimals, 15), MidpointRounding.ToEven);
        string s = rounded.ToString("F" + decimals.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
        if (s.Contains('.', StringComparison.Ordinal))
            s = s.TrimEnd('0').TrimEnd('.');
        return s;
    }
}
